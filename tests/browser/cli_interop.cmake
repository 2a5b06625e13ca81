# `parley chat` (tools/parley) against the link-room web client in real Chromium and a real
# parleyd. Missing Chromium, parleyd or the CLI fails the test (PARLEY_REQUIRE_BROWSER=1).
add_test(NAME browser.cli_interop
  COMMAND node --test --test-concurrency=1 cli-interop.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(browser.cli_interop PROPERTIES LABELS browser TIMEOUT 300
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_CLI=$<TARGET_FILE:parley>;PARLEY_LINK_PROFILE=${CMAKE_SOURCE_DIR}/tests/browser/profiles/link-room.yaml.in;ARTIFACTS_DIR=${CMAKE_BINARY_DIR}/artifacts;PARLEY_REQUIRE_BROWSER=1")
