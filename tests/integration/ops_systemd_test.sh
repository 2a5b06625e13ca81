#!/usr/bin/env bash
# Usage: ops_systemd_test.sh <build dir> <source dir>
#
# etc/parley@.service without systemd as PID 1:
#  1. cmake --install into a scratch prefix and check the layout (binaries, plugins, headers,
#     profiles, web clients, the unit);
#  2. the installed unit, its paths pointed into the prefix, passes `systemd-analyze verify`
#     with no output at all, has the hardening the issue asks for, and `systemd-analyze
#     security --offline` rates it 2.0 or better;
#  3. its ExecStartPre and ExecStart lines, run as written (with %i = ops, StateDirectory
#     created as systemd would), validate the profile and serve; ExecReload reloads; the
#     KillSignal drains to exit 0; a broken profile fails ExecStartPre;
#  4. with a build tree configured for /usr, `cpack -G DEB` and `dpkg-deb --contents` list the
#     same files (else the step says how to run it and is skipped).
set -euo pipefail

fail() {
    echo "ops_systemd: FAIL: $*" >&2
    exit 1
}
step() {
    local name=$1
    shift
    echo "ops_systemd: $name"
    if ! "$@" >"$work/step.log" 2>&1; then
        cat "$work/step.log" >&2
        fail "$name (command: $*)"
    fi
}

[[ $# -eq 2 ]] || fail "usage: $0 <build dir> <source dir>"
build=$(cd "$1" && pwd) || fail "build dir '$1' not found"
src=$(cd "$2" && pwd) || fail "source dir '$2' not found"
if ! command -v systemd-analyze >/dev/null; then
    echo "ops_systemd: SKIP: systemd-analyze not found (apt-get install systemd; scripts/deps.sh test does)"
    exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/parley-systemd.XXXXXX")
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
prefix="$work/prefix"

# 1. install layout
step "install the build tree into $prefix" cmake --install "$build" --prefix "$prefix"
for f in bin/parleyd bin/parley include/parley/plugin.h include/parley/sdk.hpp \
    include/parley/sdk_testing.hpp etc/parley/bench.yaml etc/parley/relay.yaml \
    etc/parley/link-room.yaml lib/systemd/system/parley@.service; do
    [[ -e "$prefix/$f" ]] || fail "installed tree lacks $f"
done
plugdir=$(dirname "$(find "$prefix" -name parley-transport-ws.so | head -n1)")
[[ "$plugdir" == "$prefix"/*/parley/plugins ]] || fail "plugins not in <libdir>/parley/plugins"
for p in transport-ws store-memory relay; do
    [[ -f "$plugdir/parley-$p.so" ]] || fail "installed tree lacks plugin parley-$p.so"
done
[[ -f "$prefix/share/parley/web/link/index.html" ]] || fail "installed tree lacks the link web client"

# 2. the unit, with its paths pointed into the prefix
unit_src="$prefix/lib/systemd/system/parley@.service"
units="$work/units"
mkdir -p "$units" "$work/etc" "$work/var"
cfg="$work/etc/parley"
statebase="$work/var/lib/parley"
mkdir -p "$cfg" "$statebase"
sed -e "s#/usr/bin/#$prefix/bin/#g" -e "s#/etc/parley/#$cfg/#g" \
    -e "s#/var/lib/parley/#$statebase/#g" "$unit_src" >"$units/parley@ops.service"
grep -q "$prefix/bin/parleyd" "$units/parley@ops.service" || fail "unit names no /usr/bin/parleyd"
out=$(systemd-analyze verify --man=no "$units/parley@ops.service" 2>&1) ||
    fail "systemd-analyze verify failed: $out"
[[ -z "$out" ]] || fail "systemd-analyze verify reported: $out"
for want in 'DynamicUser=yes' 'ProtectSystem=strict' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' 'MemoryDenyWriteExecute=yes' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'StateDirectory=parley/%i'; do
    grep -qxF "$want" "$unit_src" || fail "unit lacks '$want'"
done
grep -q '^ExecStartPre=.*parleyd --check-config' "$unit_src" || fail "no ExecStartPre --check-config"
exposure=$(systemd-analyze security --offline=yes --no-pager "$units/parley@ops.service" 2>&1 |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[[ -n "$exposure" ]] || fail "systemd-analyze security gave no exposure level"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "exposure level $exposure > 2.0"
echo "ops_systemd: verify clean, exposure $exposure"
# A broken unit must fail verify, or the check above proves nothing.
sed 's/^Type=exec/Type=bogus/' "$units/parley@ops.service" >"$units/parley@broken.service"
if systemd-analyze verify --man=no "$units/parley@broken.service" >/dev/null 2>&1 &&
    [[ -z "$(systemd-analyze verify --man=no "$units/parley@broken.service" 2>&1)" ]]; then
    fail "systemd-analyze verify accepts a broken unit: the check is blind"
fi

# 3. run ExecStartPre / ExecStart / ExecReload as written for instance "ops"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)
sed -e "s/^\(\s*\)port: [0-9]*/\1port: $port/" -e "s/^\(\s*\)metrics_port: [0-9]*/\1metrics_port: $mport/" \
    "$prefix/etc/parley/link-room.yaml" >"$cfg/ops.yaml"
line() { sed -n "s/^$1=//p" "$units/parley@ops.service" | sed 's/%i/ops/g'; }
pre=$(line ExecStartPre)
start=$(line ExecStart)
reload=$(line ExecReload)
[[ -n "$pre" && -n "$start" && -n "$reload" ]] || fail "unit lacks ExecStartPre/ExecStart/ExecReload"
mkdir -m 0700 "$statebase/ops" # StateDirectory=parley/%i
# shellcheck disable=SC2086 # the unit's command lines are words
step "ExecStartPre: $pre" $pre
# shellcheck disable=SC2086
$start >"$work/parleyd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -sf --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/parleyd.log" >&2; fail "ExecStart exited"; }
    sleep 0.1
done
[[ "$(curl -s --max-time 2 "http://127.0.0.1:$port/healthz")" == ok* ]] ||
    { cat "$work/parleyd.log" >&2; fail "ExecStart: no /healthz on $port"; }
curl -sf --max-time 2 "http://127.0.0.1:$port/new_chat" | grep -qi '<html' ||
    fail "the installed web client is not served"
curl -sf --max-time 2 "http://127.0.0.1:$mport/metrics" | grep -q '^parley_ws_connections' ||
    fail "no metrics on $mport"
[[ -S "$statebase/ops/control.sock" ]] || fail "no control socket in the StateDirectory"
"$prefix/bin/parley" ctl --socket "$statebase/ops/control.sock" status | grep -q '^profile *link-room' ||
    fail "parley ctl status on the unit's socket"
# shellcheck disable=SC2086
step "ExecReload: $reload" ${reload//\$MAINPID/$pid}
for _ in $(seq 50); do grep -q "reloaded profile" "$work/parleyd.log" && break; sleep 0.1; done
grep -q "reloaded profile" "$work/parleyd.log" || fail "ExecReload did not reload"
kill -TERM "$pid" # KillSignal=SIGTERM
rc=0
wait "$pid" || rc=$?
pid=""
[[ $rc -eq 0 ]] || { cat "$work/parleyd.log" >&2; fail "SIGTERM: exit $rc, want 0"; }
printf 'profile: ops\nplugins: 7\n' >"$cfg/ops.yaml"
# shellcheck disable=SC2086
if $pre >"$work/pre.log" 2>&1; then fail "ExecStartPre accepted a broken profile"; fi
grep -q "configuration invalid" "$work/pre.log" || fail "ExecStartPre gave no reason: $(cat "$work/pre.log")"
echo "ops_systemd: ExecStartPre, ExecStart, ExecReload and KillSignal behave"

# 4. the Debian package
iprefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "$build/CMakeCache.txt")
if [[ "$iprefix" != /usr ]]; then
    echo "ops_systemd: deb step skipped: $build is configured for $iprefix; for the package run"
    echo "  cmake -S . -B build-deb -G Ninja -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build-deb"
    echo "  (cd build-deb && cpack -G DEB) && dpkg-deb --contents build-deb/parley_*.deb"
    exit 0
fi
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found"
step "cpack -G DEB" cpack -G DEB -B "$work/deb" --config "$build/CPackConfig.cmake"
deb=$(find "$work/deb" -maxdepth 1 -name 'parley_*.deb' | head -n1)
[[ -n "$deb" ]] || fail "cpack made no parley_*.deb"
dpkg-deb --contents "$deb" >"$work/contents"
for f in ./usr/bin/parleyd ./usr/bin/parley /parley/plugins/parley-transport-ws.so \
    ./usr/include/parley/plugin.h ./etc/parley/link-room.yaml ./etc/parley/bench.yaml \
    ./etc/parley/relay.yaml /systemd/system/parley@.service; do
    grep -qF "$f" "$work/contents" || fail "$deb lacks $f"
done
dpkg-deb --info "$deb" | grep -q conffiles || fail "$deb has no conffiles for /etc/parley"
echo "ops_systemd: $(basename "$deb") lists binaries, plugins, headers, profiles and the unit"
