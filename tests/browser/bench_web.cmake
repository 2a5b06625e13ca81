# The bench (BenchTalks-compatible) web client: real Chromium (Debian) driven by npm
# playwright-core against a real parleyd, plus its crypto vectors in Node. Under ctest a
# missing browser or server is a failure (PARLEY_REQUIRE_BROWSER), never a silent skip.
add_test(NAME browser.bench_web
  COMMAND node --test --test-concurrency=1 bench-web.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(browser.bench_web PROPERTIES LABELS browser TIMEOUT 300
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_BENCH_PROFILE=${CMAKE_SOURCE_DIR}/tests/browser/profiles/bench.yaml.in;ARTIFACTS_DIR=${CMAKE_BINARY_DIR}/artifacts;PARLEY_REQUIRE_BROWSER=1")
# The client's crypto.js and vendored tweetnacl against BenchTalks-format vectors and a
# reference implementation of BenchTalks' crypto.js (no server, no browser).
add_test(NAME unit.bench_vectors_js
  COMMAND node --test bench-vectors.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(unit.bench_vectors_js PROPERTIES LABELS unit TIMEOUT 120)
