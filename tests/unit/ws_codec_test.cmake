# Unit tests for the WebSocket codec (plugins/transport-ws/codec). Included by the unit test
# CMakeLists after the parley_ws_codec target exists.
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()
add_executable(ws_codec_test ${CMAKE_CURRENT_LIST_DIR}/ws_codec_test.cpp)
target_link_libraries(ws_codec_test PRIVATE parley_ws_codec GTest::gtest_main)
# Same as PARLEY_WARNINGS: designated initializers leave fields defaulted on purpose.
target_compile_options(ws_codec_test PRIVATE -Wall -Wextra -Werror -Wno-missing-field-initializers)
add_test(NAME unit.ws_codec COMMAND ws_codec_test)
set_tests_properties(unit.ws_codec PROPERTIES LABELS unit)
