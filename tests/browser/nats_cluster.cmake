# Cluster mode of transport-nats (issue 7): real nats-server (JetStream) and real parleyd nodes,
# driven by node's test runner and npm `ws`. integration.nats_cluster: three bench nodes;
# integration.nats_cluster_link: two link-room nodes on one throwaway PostgreSQL.
if(PARLEY_WITH_NATS)
  set(PARLEY_NATS_CLUSTER_ENV
    PARLEYD=$<TARGET_FILE:parleyd>
    PARLEY_NATS_CLUSTER_PROFILE=${CMAKE_SOURCE_DIR}/tests/browser/profiles/nats_cluster_bench.yaml.in
    PARLEY_NATS_CLUSTER_LINK_PROFILE=${CMAKE_SOURCE_DIR}/tests/browser/profiles/nats_cluster_link.yaml.in
    PARLEY_REQUIRE_SERVER=1)
  add_test(NAME integration.nats_cluster
    COMMAND node --test --test-concurrency=1 nats_cluster.test.mjs
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
  set_tests_properties(integration.nats_cluster PROPERTIES LABELS integration TIMEOUT 120
    ENVIRONMENT "${PARLEY_NATS_CLUSTER_ENV}")
  if(PARLEY_WITH_PG)
    add_test(NAME integration.nats_cluster_link
      COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/pg_env.sh
              node --test --test-concurrency=1 nats_cluster_link.test.mjs
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
    set_tests_properties(integration.nats_cluster_link PROPERTIES LABELS integration TIMEOUT 120
      ENVIRONMENT "${PARLEY_NATS_CLUSTER_ENV}")
  endif()
endif()
