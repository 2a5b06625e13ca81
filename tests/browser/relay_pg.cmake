# Relay blobs on store-pg: restart keeps them; kill -9 of PostgreSQL mid-burst loses none that
# got a 201, 503 while down, recovery without restarting parleyd. Throwaway cluster (pg_env.sh).
if(PARLEY_WITH_PG AND TARGET parley_store_pg)
  add_test(NAME integration.relay_pg
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/pg_env.sh
            node --test --test-concurrency=1 relay_pg.test.mjs
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
  set_tests_properties(integration.relay_pg PROPERTIES LABELS integration TIMEOUT 240
    SKIP_RETURN_CODE 77
    ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_CLI=$<TARGET_FILE:parley>")
endif()
