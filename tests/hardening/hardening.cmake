# Hardening tests (issue 11): real parleyd processes driven by Python clients on raw sockets
# (tests/hardening/hlib.py), so they control socket buffers, trickle bytes and never read.
if(NOT TARGET parleyd OR NOT TARGET parley_transport_ws OR NOT TARGET parley_store_memory)
  return()
endif()
find_package(Python3 COMPONENTS Interpreter QUIET)
if(NOT Python3_Interpreter_FOUND)
  message(STATUS "hardening tests: no python3, skipped")
  return()
endif()
set(_hard_dir ${CMAKE_CURRENT_LIST_DIR})
# No __pycache__ in the source tree.
set(_hard_env PARLEYD=$<TARGET_FILE:parleyd> PYTHONDONTWRITEBYTECODE=1)

# Slow readers (2000; HARDENING_SLOW_READERS=8000 for the long form), 1 byte/s client,
# connection flood from one address.
add_test(NAME integration.hardening.hostile COMMAND ${Python3_EXECUTABLE} ${_hard_dir}/hostile.py)
set_tests_properties(integration.hardening.hostile PROPERTIES LABELS integration TIMEOUT 180
  RUN_SERIAL TRUE ENVIRONMENT "${_hard_env}")

if(PARLEY_WITH_PG AND TARGET parley_store_pg)
  # kill -9 of parleyd on store-pg + restart; unusable state directories.
  add_test(NAME integration.hardening.fault
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/pg_env.sh
            ${Python3_EXECUTABLE} ${_hard_dir}/fault.py)
  set_tests_properties(integration.hardening.fault PROPERTIES LABELS integration TIMEOUT 120
    SKIP_RETURN_CODE 77 ENVIRONMENT "${_hard_env}")
endif()

# The short form of scripts/soak: 60 s of mixed link + bench traffic, growth bounds checked.
add_test(NAME integration.hardening.soak COMMAND ${Python3_EXECUTABLE} ${_hard_dir}/soak.py)
set_tests_properties(integration.hardening.soak PROPERTIES LABELS integration TIMEOUT 150
  RUN_SERIAL TRUE ENVIRONMENT "${_hard_env};SOAK_SECONDS=60")

# Privacy audit: link-room (store-pg, `parley chat`), bench and the relay blob API with debug
# logging; no secret, plaintext or client address in the log or in pg_dump; blob expiry blurred.
if(PARLEY_WITH_PG AND TARGET parley_store_pg AND TARGET parley_relay AND TARGET parley)
  add_test(NAME integration.privacy_audit
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/pg_env.sh
            node --test --test-concurrency=1 ${_hard_dir}/privacy_audit.mjs)
  set_tests_properties(integration.privacy_audit PROPERTIES LABELS integration TIMEOUT 120
    SKIP_RETURN_CODE 77 ENVIRONMENT "${_hard_env};PARLEY_CLI=$<TARGET_FILE:parley>")
endif()

# Privacy audit of the relay profile: /ws and Socket.IO challenge-response, blobs, signaling
# (SDP, ICE candidates, e2e payloads) and TURN credentials with debug logging, on store-pg.
if(PARLEY_WITH_PG AND TARGET parley_store_pg AND TARGET parley_relay AND TARGET parley_signaling
   AND TARGET parley)
  add_test(NAME integration.privacy_audit_relay
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/pg_env.sh
            node --test --test-concurrency=1 ${_hard_dir}/privacy_audit_relay.mjs)
  set_tests_properties(integration.privacy_audit_relay PROPERTIES LABELS integration TIMEOUT 120
    SKIP_RETURN_CODE 77 ENVIRONMENT "${_hard_env};PARLEY_CLI=$<TARGET_FILE:parley>")
endif()
