# Raw-socket RFC 6455 / HTTP conformance tests of transport-ws: the test starts its own parleyd
# (raw dialect, port 0, temp state dir) and talks to it with hand-built bytes, no client library.
if(NOT TARGET parleyd OR NOT TARGET parley_transport_ws)
  return()
endif()
if(NOT TARGET GTest::gtest)
  find_package(GTest REQUIRED)
endif()
add_executable(ws_rfc_test ${CMAKE_CURRENT_LIST_DIR}/ws_rfc_test.cpp)
target_link_libraries(ws_rfc_test PRIVATE GTest::gtest)
target_compile_features(ws_rfc_test PRIVATE cxx_std_20)
target_compile_definitions(ws_rfc_test PRIVATE PARLEYD_PATH="$<TARGET_FILE:parleyd>")
target_compile_options(ws_rfc_test PRIVATE -Wall -Wextra -Werror -Wno-missing-field-initializers)
# The daemon loads the plugin from next to it: building the test builds what it runs.
add_dependencies(ws_rfc_test parleyd parley_transport_ws)
add_test(NAME integration.ws_rfc COMMAND ws_rfc_test)
set_tests_properties(integration.ws_rfc PROPERTIES LABELS integration TIMEOUT 180)
