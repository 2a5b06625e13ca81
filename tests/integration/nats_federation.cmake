# Federation between benches over real nats-server processes (issue 7): node's test runner,
# the npm `ws` client and a few-line NATS protocol client (tests/browser/nats_fed_lib.mjs)
# against real parleyd processes. integration.nats_federation: two benches, two routed
# nats-servers, authenticated mode. integration.nats_compat: benchtalks mode against a stand-in
# that follows BenchTalks' subjects and payloads (tests/browser/nats_fed_standin.mjs).
# Under ctest a missing parleyd or nats-server is a failure, never a skip.
if(NOT TARGET parley_transport_nats)
  return()
endif()
add_test(NAME integration.nats_federation
  COMMAND node --test --test-concurrency=1 nats_federation.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
add_test(NAME integration.nats_compat
  COMMAND node --test --test-concurrency=1 nats_fed_compat.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(integration.nats_federation integration.nats_compat PROPERTIES
  LABELS integration TIMEOUT 120
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_REQUIRE_SERVER=1")
