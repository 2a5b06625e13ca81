# Unit tests for kernel/config (parley_config). Included by the top-level test setup.
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()
add_executable(config_test ${CMAKE_CURRENT_LIST_DIR}/config_test.cpp)
target_compile_options(config_test PRIVATE -Wall -Wextra -Werror -Wno-missing-field-initializers)
target_link_libraries(config_test parley_config GTest::gtest_main)
add_test(NAME unit.config COMMAND config_test)
set_tests_properties(unit.config PROPERTIES LABELS unit)
