#!/usr/bin/env bash
# Usage: sdk_install_test.sh <build dir> <source dir>
#
# Checks the installed plugin SDK the way a third party uses it:
#  1. cmake --install <build> into a scratch prefix;
#  2. configure + build examples/plugin-hello against that prefix only (find_package(parley));
#  3. run its unit test (FakeHost);
#  4. the module exports exactly one parley symbol, parley_plugin_entry_v0;
#  5. a tiny C++ file compiles with `pkg-config --cflags parley`;
#  6. run the installed parleyd with a profile that loads the module; GET /hello.
#  7. copy the module to <build>/examples-out/parley-hello.so for the kernel tests.
set -euo pipefail

fail() {
    echo "sdk_install_test: FAIL: $*" >&2
    exit 1
}
# Runs a step quietly; on failure shows its output and names the step.
step() {
    local name=$1
    shift
    echo "sdk_install_test: $name"
    if ! "$@" >"$work/step.log" 2>&1; then
        cat "$work/step.log" >&2
        fail "$name (command: $*)"
    fi
}

[[ $# -eq 2 ]] || fail "usage: $0 <build dir> <source dir>"
build=$(cd "$1" && pwd) || fail "build dir '$1' not found"
src=$(cd "$2" && pwd) || fail "source dir '$2' not found"
example="$src/examples/plugin-hello"
[[ -f "$build/CMakeCache.txt" ]] || fail "$build is not a configured CMake build tree"
[[ -f "$example/CMakeLists.txt" ]] || fail "$example/CMakeLists.txt missing"
for tool in cmake ctest nm pkg-config; do
    command -v "$tool" >/dev/null || fail "'$tool' not found in PATH"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/parley-sdk-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

# Build the example with the compiler the main tree used (g++ or clang++ CI jobs).
cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
cxx=${cxx:-c++}

# 1. install
# cmake --install installs every target, so the whole tree must be built first.
step "install the build tree into $prefix (needs a complete build: cmake --build $build)" \
    cmake --install "$build" --prefix "$prefix"
for f in include/parley/plugin.h include/parley/sdk.hpp include/parley/sdk_testing.hpp; do
    [[ -f "$prefix/$f" ]] || fail "installed tree lacks $f"
done
config=$(find "$prefix" -path '*/cmake/parley/parleyConfig.cmake' | head -n1)
[[ -n "$config" ]] || fail "installed tree lacks cmake/parley/parleyConfig.cmake"
[[ -f "$(dirname "$config")/parleyConfigVersion.cmake" ]] || fail "parleyConfigVersion.cmake missing"
pc=$(find "$prefix" -path '*/pkgconfig/parley.pc' | head -n1)
[[ -n "$pc" ]] || fail "installed tree lacks pkgconfig/parley.pc"

# 2. configure + build the out-of-tree example against the prefix only
hello_build="$work/build-hello"
step "configure examples/plugin-hello against the installed SDK" \
    cmake -S "$example" -B "$hello_build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo
# It must not have found headers or the package anywhere else (e.g. the source tree).
found_dir=$(sed -n 's/^parley_DIR:PATH=//p' "$hello_build/CMakeCache.txt")
[[ "$found_dir" == "$prefix"/* ]] || fail "find_package(parley) used '$found_dir', not $prefix"
if grep -rqs --include=flags.make -- "$src/include" "$hello_build"/CMakeFiles; then
    fail "the example was compiled against $src/include instead of the installed headers"
fi
step "build examples/plugin-hello" cmake --build "$hello_build" --parallel
so="$hello_build/parley-hello.so"
[[ -f "$so" ]] || fail "expected module $so was not built"

# 3. its unit test (GTest must be found, else no test exists and this fails)
step "run the example's unit test" ctest --test-dir "$hello_build" --output-on-failure \
    --no-tests=error

# 4. exactly one exported parley symbol, the versioned entry point
exported=$(nm -D --defined-only "$so" | awk '{print $NF}' | grep -i parley || true)
if [[ "$exported" != "parley_plugin_entry_v0" ]]; then
    echo "exported parley symbols:" >&2
    echo "${exported:-<none>}" >&2
    fail "$so must export exactly one parley symbol, parley_plugin_entry_v0"
fi
undefined=$(nm -D --undefined-only "$so" | awk '{print $NF}' | grep -i parley || true)
[[ -z "$undefined" ]] || fail "$so needs parley symbols from its host: $undefined"

# 5. pkg-config consumers
pcdir=$(dirname "$pc")
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
cflags=$(pkg-config --cflags parley) || fail "pkg-config --cflags parley failed"
[[ "$cflags" == *"-I$prefix/"* ]] || fail "pkg-config cflags '$cflags' do not point into $prefix"
plugindir=$(pkg-config --variable=plugindir parley)
[[ "$plugindir" == "$prefix"/*/parley/plugins ]] || fail "plugindir '$plugindir' not under $prefix"
cat >"$work/pc_consumer.cpp" <<'CPP'
#include <parley/plugin.h>
#include <parley/sdk.hpp>
static_assert(PARLEY_ABI_MAJOR == 0, "this SDK is ABI 0.x");
int main() { return parley::sdk::view(parley::sdk::bytes("ok")).size() == 2 ? 0 : 1; }
CPP
# shellcheck disable=SC2086 # cflags are words
step "compile a C++ file with pkg-config --cflags parley" \
    "$cxx" -std=c++20 $cflags -o "$work/pc_consumer" "$work/pc_consumer.cpp"
step "run the pkg-config consumer" "$work/pc_consumer"

# 6. the INSTALLED parleyd loads the out-of-tree module from a profile and serves its route
state="$work/state"
mkdir -p "$state"
cat >"$work/hello.yaml" <<YAML
profile: sdk-hello
state_dir: $state
plugins:
  - name: web
    plugin: transport-ws
    config: {port: 0, protocol: raw, threads: 1}
  - name: greeter
    file: $so
    plugin: hello
    config: {greeting: "hello from out of tree"}
YAML
"$prefix/bin/parleyd" --check-config "$work/hello.yaml" >/dev/null ||
    fail "installed parleyd rejects a profile loading the example plugin"
"$prefix/bin/parleyd" "$work/hello.yaml" 2>"$work/parleyd.log" &
pid=$!
for _ in $(seq 50); do [[ -s "$state/web.port" ]] && break; sleep 0.1; done
[[ -s "$state/web.port" ]] || { kill "$pid"; cat "$work/parleyd.log" >&2; fail "parleyd did not start"; }
port=$(cat "$state/web.port")
reply=$(curl -s --max-time 5 "http://127.0.0.1:$port/hello" || true)
kill -TERM "$pid"
wait "$pid" || fail "parleyd did not exit 0 on SIGTERM"
[[ "$reply" == "hello from out of tree" ]] ||
    { cat "$work/parleyd.log" >&2; fail "GET /hello answered '$reply'"; }
grep -q '"logger":"greeter"' "$work/parleyd.log" || fail "no log line from the plugin instance"
echo "sdk_install_test: installed parleyd loaded the example plugin and served GET /hello"

# 7. hand the module to later tests
mkdir -p "$build/examples-out"
cp "$so" "$build/examples-out/parley-hello.so"
echo "sdk_install_test: OK ($build/examples-out/parley-hello.so)"
