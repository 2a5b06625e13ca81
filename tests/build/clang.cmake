# The C++20 code must build with clang 14 (libstdc++ 12) as well as g++ 12: the fuzzers need
# clang. A separate clang build of the whole tree, tests included, with the same -Werror flags.
add_test(NAME build.clang
  COMMAND ${CMAKE_COMMAND} -E env CC=clang-14 CXX=clang++-14
          bash -c "cmake -S '${CMAKE_SOURCE_DIR}' -B '${CMAKE_BINARY_DIR}/clang-build' -G Ninja -DPARLEY_TESTS=ON >/dev/null && cmake --build '${CMAKE_BINARY_DIR}/clang-build' -j$(nproc)")
set_tests_properties(build.clang PROPERTIES LABELS build TIMEOUT 1200)
