#!/usr/bin/env bash
# Usage: ops_abi_rows_test.sh PARLEYD PLUGIN_SO
# A plugin whose config rows are wider than the host's parley_t_config_key (built as a newer
# minor would be) is described, validated and configured correctly.
set -euo pipefail
parleyd=$1
so=$2
fail() {
    echo "ops_abi_rows: FAIL: $*" >&2
    exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/parley-abi-rows.XXXXXX")
pid=""
trap '[[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null; rm -rf "$work"' EXIT

desc=$("$parleyd" --describe-plugin "$so" --json) || fail "describe failed"
python3 - "$desc" <<'PY' || fail "describe output: $desc"
import json, sys
keys = json.loads(sys.argv[1])
names = [k["name"] for k in keys]
assert names == ["alpha", "beta", "nested"], names
assert keys[1]["default"] == "7" and keys[1]["min"] == 0 and keys[1]["max"] == 10, keys[1]
kids = keys[2]["children"]
assert [k["name"] for k in kids] == ["depth", "mode"], kids
assert kids[1]["values"] == ["fast", "safe"], kids[1]
PY

cat >"$work/good.yaml" <<YAML
profile: abi-rows
state_dir: $work/state
plugins:
  - name: wide
    file: $so
    plugin: wide-rows
    config: {alpha: "x", nested: {depth: 5, mode: fast}}
YAML
"$parleyd" --check-config "$work/good.yaml" >/dev/null 2>"$work/check.log" ||
    fail "good profile refused: $(cat "$work/check.log")"
sed 's/depth: 5/depth: 12/' "$work/good.yaml" >"$work/bad.yaml"
if "$parleyd" --check-config "$work/bad.yaml" >/dev/null 2>"$work/bad.log"; then
    fail "nested.depth 12 (max 9) accepted"
fi
grep -q "nested.depth" "$work/bad.log" || fail "range error does not name nested.depth: $(cat "$work/bad.log")"

"$parleyd" "$work/good.yaml" >"$work/run.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "wide rows:" "$work/run.log" && break; sleep 0.05; done
grep -q "wide rows: alpha=x beta=7 depth=5 mode=fast" "$work/run.log" ||
    fail "plugin saw the wrong config: $(cat "$work/run.log")"
kill -TERM "$pid"
wait "$pid" || fail "parleyd did not exit 0"
pid=""
echo "ops_abi_rows: OK"
