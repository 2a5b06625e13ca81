# Protocol test of the bench (BenchTalks) dialect: node's test runner and the npm `ws` client
# (tests/browser/node_modules) against a real parleyd. No browser involved. Under ctest a
# missing parleyd is a failure (PARLEY_REQUIRE_SERVER), never a silent skip.
add_test(NAME integration.bench_protocol
  COMMAND node --test --test-concurrency=1 bench_protocol.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(integration.bench_protocol PROPERTIES LABELS integration TIMEOUT 180
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_BENCH_PROFILE=${CMAKE_SOURCE_DIR}/tests/browser/profiles/bench.yaml.in;PARLEY_REQUIRE_SERVER=1")
