# Unit tests of the plugin SDK (sdk.hpp) and its FakeHost (sdk_testing.hpp). Included from the
# tests' CMakeLists; paths are relative to this file so the include site does not matter.
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()

add_executable(sdk_test ${CMAKE_CURRENT_LIST_DIR}/sdk_test.cpp)
target_link_libraries(sdk_test PRIVATE parley::api GTest::gtest_main ${CMAKE_DL_LIBS})
if(DEFINED PARLEY_WARNINGS)
  target_compile_options(sdk_test PRIVATE ${PARLEY_WARNINGS})
endif()
add_test(NAME unit.sdk COMMAND sdk_test)
set_tests_properties(unit.sdk PROPERTIES LABELS unit)
