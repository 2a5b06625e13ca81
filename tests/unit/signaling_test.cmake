# Unit tests of plugins/signaling: the built .so on the SDK's FakeHost (call rooms, ACL, signal
# relay, limits, TURN REST credentials and secret reload).
if(NOT TARGET parley_signaling)
  return()
endif()
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()
add_executable(signaling_test ${CMAKE_CURRENT_LIST_DIR}/signaling_test.cpp)
target_link_libraries(signaling_test PRIVATE parley::api parley_signaling_core GTest::gtest_main
  ${CMAKE_DL_LIBS})
target_compile_options(signaling_test PRIVATE ${PARLEY_WARNINGS})
target_compile_definitions(signaling_test PRIVATE
  PARLEY_SIGNALING_SO="$<TARGET_FILE:parley_signaling>")
add_dependencies(signaling_test parley_signaling)
add_test(NAME unit.signaling COMMAND signaling_test)
set_tests_properties(unit.signaling PROPERTIES LABELS unit)

add_executable(signaling_socketio_test ${CMAKE_CURRENT_LIST_DIR}/signaling_socketio_test.cpp)
target_link_libraries(signaling_socketio_test PRIVATE parley_dialects GTest::gtest_main)
target_compile_options(signaling_socketio_test PRIVATE ${PARLEY_WARNINGS})
add_test(NAME unit.socketio_codec COMMAND signaling_socketio_test)
set_tests_properties(unit.socketio_codec PROPERTIES LABELS unit)
