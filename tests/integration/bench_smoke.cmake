# Smoke run of the performance suite (issue 10), so bench/run and parley-bench never rot: a few
# seconds of fan-out against parley, the C floor and whichever of the Go and Node peers can be
# built here (bench/run reports the skipped ones; parley and the C floor are never skipped).
# Passes when every server delivers messages with zero errors. bench/run builds what it runs
# (parleyd, the transport plugin, parley-bench, bench-c-floor) in this build tree.
if(NOT TARGET parleyd OR NOT TARGET parley-bench OR NOT TARGET bench-c-floor)
  return()
endif()
add_test(NAME integration.bench_smoke
  COMMAND bash ${CMAKE_SOURCE_DIR}/bench/run --smoke --build-dir ${CMAKE_BINARY_DIR})
set_tests_properties(integration.bench_smoke PROPERTIES LABELS integration TIMEOUT 300 RUN_SERIAL TRUE)
