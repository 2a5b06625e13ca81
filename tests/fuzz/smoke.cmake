# Fuzz smoke in the default test run: a separate clang build of the fuzz targets, each run for a
# bounded time (PARLEY_FUZZ_SECONDS, default 10; 6 targets: about a minute of fuzzing
# after the clang build, inside the 3-minute budget). Long runs: scripts/fuzz.
set(PARLEY_FUZZ_SECONDS 10 CACHE STRING "Seconds per fuzz target in the test run")
if(NOT PARLEY_FUZZ)
  add_test(NAME fuzz.smoke
    COMMAND ${CMAKE_COMMAND} -E env FUZZ_BUILD_DIR=${CMAKE_BINARY_DIR}/fuzz-smoke
            bash ${CMAKE_SOURCE_DIR}/scripts/fuzz ${PARLEY_FUZZ_SECONDS}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(fuzz.smoke PROPERTIES LABELS fuzz TIMEOUT 900)
endif()
