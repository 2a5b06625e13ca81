# Kernel integration tests: real parleyd processes (and `parley ctl`) driven by GoogleTest, with
# the test plugins of tests/plugins. Included by tests/CMakeLists.txt.
if(NOT TARGET parley_transport_ws OR NOT TARGET parley_store_memory)
  message(STATUS "integration.kernel: transport-ws or store-memory missing, skipped")
  return()
endif()
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()

add_subdirectory(${CMAKE_SOURCE_DIR}/tests/plugins ${CMAKE_BINARY_DIR}/tests/plugins)

add_executable(kernel_test ${CMAKE_CURRENT_LIST_DIR}/kernel_test.cpp)
target_compile_options(kernel_test PRIVATE ${PARLEY_WARNINGS})
target_link_libraries(kernel_test PRIVATE parley::api GTest::gtest_main Poco::JSON
  Poco::Foundation Threads::Threads)
target_compile_definitions(kernel_test PRIVATE
  PARLEYD_BIN="$<TARGET_FILE:parleyd>"
  PARLEY_BIN="$<TARGET_FILE:parley>"
  PARLEY_PLUGIN_DIR="$<TARGET_FILE_DIR:parley_store_memory>"
  PARLEY_TEST_PLUGIN_DIR="$<TARGET_FILE_DIR:parley_test_service>"
  PARLEY_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
  PARLEY_EXPECTED_VERSION="${PROJECT_VERSION}")
# The test runs the binaries and loads the plugins, so building it builds all of them.
add_dependencies(kernel_test parleyd parley parley_transport_ws parley_store_memory
  ${PARLEY_TEST_PLUGINS})

add_test(NAME integration.kernel COMMAND kernel_test)
set_tests_properties(integration.kernel PROPERTIES LABELS integration TIMEOUT 180)
