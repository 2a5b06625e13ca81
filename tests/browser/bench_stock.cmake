# BenchTalks' own pages served by parley under bench.pages (stand-in pages in CI; set
# BENCHTALKS_PUBLIC to an unmodified BenchTalks pkg/public to run the stock client too).
add_test(NAME browser.bench_stock
  COMMAND node --test --test-concurrency=1 bench-stock.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(browser.bench_stock PROPERTIES LABELS browser TIMEOUT 300
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;ARTIFACTS_DIR=${CMAKE_BINARY_DIR}/artifacts;PARLEY_REQUIRE_BROWSER=1")
