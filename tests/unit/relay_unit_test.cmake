# Unit tests of the relay profile's pure helpers (plugins/relay/relay_core): key hash,
# obfuscated expiry, request proofs, allowlist parsing.
if(NOT TARGET parley_relay_core)
  return()
endif()
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()
add_executable(relay_unit_test ${CMAKE_CURRENT_LIST_DIR}/relay_unit_test.cpp)
target_link_libraries(relay_unit_test PRIVATE parley_relay_core parley_dialects GTest::gtest_main)
target_compile_options(relay_unit_test PRIVATE ${PARLEY_WARNINGS})
add_test(NAME unit.relay COMMAND relay_unit_test)
set_tests_properties(unit.relay PROPERTIES LABELS unit)
