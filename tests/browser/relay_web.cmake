# The relay web client (plugins/transport-ws/web/relay) in real Chromium (Debian) driven by npm
# playwright-core against a real parleyd with the relay plugin in secure mode; identities from
# `parley identities generate`. Missing Chromium, parleyd or the CLI fails the test
# (PARLEY_REQUIRE_BROWSER=1), never a silent skip.
if(NOT TARGET parley_relay)
  return()
endif()
add_test(NAME browser.relay_web
  COMMAND node --test --test-concurrency=1 relay-web.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(browser.relay_web PROPERTIES LABELS browser TIMEOUT 300
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_CLI=$<TARGET_FILE:parley>;PARLEY_RELAY_WEB_PROFILE=${CMAKE_SOURCE_DIR}/tests/browser/profiles/relay-web.yaml.in;PARLEY_RELAY_WEB_ROOT=${CMAKE_SOURCE_DIR}/plugins/transport-ws/web/relay;PARLEY_RELAY_WEB_PROTOCOL=relay;ARTIFACTS_DIR=${CMAKE_BINARY_DIR}/artifacts;PARLEY_REQUIRE_BROWSER=1")
