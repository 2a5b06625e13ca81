# Calls through parley's signaling with real coturn and two headless Chromium pages
# (browser.signaling_call), and Relay's Socket.IO dialect driven by npm socket.io-client
# (integration.socketio).
if(NOT TARGET parley_signaling OR NOT TARGET parley_relay OR NOT TARGET parley_transport_ws)
  return()
endif()
add_test(NAME browser.signaling_call
  COMMAND node --test --test-concurrency=1 signaling.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(browser.signaling_call PROPERTIES LABELS browser TIMEOUT 240
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_CLI=$<TARGET_FILE:parley>")
add_test(NAME integration.socketio
  COMMAND node --test --test-concurrency=1 signaling-socketio.test.mjs
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/browser)
set_tests_properties(integration.socketio PROPERTIES LABELS integration TIMEOUT 120
  ENVIRONMENT "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_CLI=$<TARGET_FILE:parley>")
