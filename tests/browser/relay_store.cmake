# Relay profile: allowlist path relative to the profile file, 507 when the store is full.
if(NOT TARGET parley_relay OR NOT TARGET parley_transport_ws)
  return()
endif()
add_test(NAME integration.relay_store
  COMMAND node --test --test-concurrency=1 relay_store.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(integration.relay_store PROPERTIES LABELS integration TIMEOUT 60
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_CLI=$<TARGET_FILE:parley>")

