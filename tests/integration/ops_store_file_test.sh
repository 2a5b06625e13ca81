#!/usr/bin/env bash
# Usage: ops_store_file_test.sh <build dir> <source dir>
#
# examples/store-file as a third party builds it: install the parley build tree into a scratch
# prefix, build the example against that prefix only, run its FakeHost unit tests, check it
# exports one symbol, then let ops_store_file.test.mjs run the INSTALLED parleyd with a profile
# that loads it as the history store.
set -euo pipefail

fail() {
    echo "ops_store_file: FAIL: $*" >&2
    exit 1
}
step() {
    local name=$1
    shift
    echo "ops_store_file: $name"
    if ! "$@" >"$work/step.log" 2>&1; then
        cat "$work/step.log" >&2
        fail "$name (command: $*)"
    fi
}

[[ $# -eq 2 ]] || fail "usage: $0 <build dir> <source dir>"
build=$(cd "$1" && pwd) || fail "build dir '$1' not found"
src=$(cd "$2" && pwd) || fail "source dir '$2' not found"
example="$src/examples/store-file"
[[ -f "$build/CMakeCache.txt" ]] || fail "$build is not a configured CMake build tree"

work=$(mktemp -d "${TMPDIR:-/tmp}/parley-store-file.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")

step "install the build tree into $prefix" cmake --install "$build" --prefix "$prefix"
step "configure examples/store-file against the installed SDK" \
    cmake -S "$example" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CXX_COMPILER="${cxx:-c++}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
found_dir=$(sed -n 's/^parley_DIR:PATH=//p' "$work/build/CMakeCache.txt")
[[ "$found_dir" == "$prefix"/* ]] || fail "find_package(parley) used '$found_dir', not $prefix"
step "build examples/store-file" cmake --build "$work/build" --parallel 2
so="$work/build/parley-store-file.so"
[[ -f "$so" ]] || fail "expected module $so was not built"
step "run its FakeHost unit tests" ctest --test-dir "$work/build" --output-on-failure --no-tests=error
exported=$(nm -D --defined-only "$so" | awk '{print $NF}' | grep -i parley || true)
[[ "$exported" == "parley_plugin_entry_v0" ]] || fail "$so exports '$exported', want only parley_plugin_entry_v0"
"$prefix/bin/parleyd" --describe-plugin "$so" | grep -q history_limit ||
    fail "installed parleyd cannot describe $so"

echo "ops_store_file: installed parleyd + store-file through real WebSockets"
cd "$src/tests/integration"
STORE_FILE_SO="$so" PARLEYD="$prefix/bin/parleyd" PARLEY_CLI="$prefix/bin/parley" \
    node --test --test-concurrency=1 ops_store_file.test.mjs
