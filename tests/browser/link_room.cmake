# Browser tests: real Chromium (Debian) driven by npm playwright-core against a real parleyd.
set(PARLEY_BROWSER_ENV
  PARLEYD=$<TARGET_FILE:parleyd>
  PARLEY_CLI=$<TARGET_FILE:parley>
  PARLEY_LINK_PROFILE=${CMAKE_SOURCE_DIR}/tests/browser/profiles/link-room.yaml.in
  ARTIFACTS_DIR=${CMAKE_BINARY_DIR}/artifacts
  PARLEY_REQUIRE_BROWSER=1)
add_test(NAME browser.link_room
  COMMAND node --test --test-concurrency=1 link-room.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(browser.link_room PROPERTIES LABELS browser TIMEOUT 300
  ENVIRONMENT "${PARLEY_BROWSER_ENV}")
add_test(NAME unit.link_vectors_js
  COMMAND node --test vectors.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(unit.link_vectors_js PROPERTIES LABELS unit TIMEOUT 60)
add_test(NAME integration.link_protocol
  COMMAND node --test --test-concurrency=1 link-protocol.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(integration.link_protocol PROPERTIES LABELS integration TIMEOUT 120
  ENVIRONMENT "${PARLEY_BROWSER_ENV}")
if(PARLEY_WITH_PG)
  add_test(NAME integration.link_pg_restart
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/pg_env.sh
            node --test --test-concurrency=1 link-pg-restart.test.mjs
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
  set_tests_properties(integration.link_pg_restart PROPERTIES LABELS integration TIMEOUT 180
    ENVIRONMENT "${PARLEY_BROWSER_ENV}")
endif()
