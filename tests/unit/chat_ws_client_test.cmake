# Unit tests of the client-side WebSocket framing of `parley chat` (tools/parley/ws_client.*):
# server frames read, client frames masked. Needs parley_ws_codec and parley_link_crypto.
if(NOT TARGET parley_link_crypto)
  return()
endif()
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()
add_executable(chat_ws_client_test ${CMAKE_CURRENT_LIST_DIR}/chat_ws_client_test.cpp
  ${CMAKE_SOURCE_DIR}/tools/parley/ws_client.cpp)
target_include_directories(chat_ws_client_test PRIVATE ${CMAKE_SOURCE_DIR}/tools/parley)
target_link_libraries(chat_ws_client_test PRIVATE parley_ws_codec PkgConfig::SODIUM GTest::gtest_main)
target_compile_options(chat_ws_client_test PRIVATE ${PARLEY_WARNINGS})
add_test(NAME unit.chat_ws_client COMMAND chat_ws_client_test)
set_tests_properties(unit.chat_ws_client PROPERTIES LABELS unit)
