# Federation between benches over real nats-server processes (issue 7): node's test runner,
# the npm `ws` client and a few-line NATS protocol client (tests/browser/nats_fed_lib.mjs)
# against two real parleyd. Under ctest a missing parleyd or nats-server is a failure.
if(NOT TARGET parley_transport_nats)
  return()
endif()
add_test(NAME integration.nats_federation
  COMMAND node --test --test-concurrency=1 nats_federation.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(integration.nats_federation PROPERTIES
  LABELS integration TIMEOUT 120
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_REQUIRE_SERVER=1")
