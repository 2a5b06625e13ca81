# Relay's unmodified, unauthenticated client (npm socket.io-client with Relay's events, no
# challenge/auth) against the relay plugin in compat mode (integration.socketio_compat).
if(NOT TARGET parley_signaling OR NOT TARGET parley_relay OR NOT TARGET parley_transport_ws)
  return()
endif()
add_test(NAME integration.socketio_compat
  COMMAND node --test --test-concurrency=1 socketio-compat.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(integration.socketio_compat PROPERTIES LABELS integration TIMEOUT 120
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_CLI=$<TARGET_FILE:parley>")
