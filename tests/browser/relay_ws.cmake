# Relay WebSocket dialect (challenge-response admission, join_blob/refresh, command forwarding,
# auth timeout, allowlist reload) against a real parleyd, driven by node's ws + tweetnacl.
if(NOT TARGET parley_relay OR NOT TARGET parley_transport_ws)
  return()
endif()
add_test(NAME integration.relay_ws
  COMMAND node --test --test-concurrency=1 relay_ws.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(integration.relay_ws PROPERTIES LABELS integration TIMEOUT 120
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_CLI=$<TARGET_FILE:parley>;PARLEY_RELAY_WS_PROFILE=${CMAKE_SOURCE_DIR}/tests/browser/profiles/relay-ws.yaml.in")
