# Cluster mode across nats-server restarts (issue 11, fault injection): two bench nodes under
# steady traffic while nats-server is stopped with SIGTERM and with kill -9 and started again on
# the same port with its JetStream store (tests/browser/nats_cluster_restart.test.mjs).
if(PARLEY_WITH_NATS)
  add_test(NAME integration.nats_cluster_restart
    COMMAND node --test --test-concurrency=1 nats_cluster_restart.test.mjs
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
  set_tests_properties(integration.nats_cluster_restart PROPERTIES LABELS integration TIMEOUT 90
    ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_NATS_CLUSTER_PROFILE=${CMAKE_SOURCE_DIR}/tests/browser/profiles/nats_cluster_bench.yaml.in;PARLEY_REQUIRE_SERVER=1")
endif()
