# Unit tests of the `parley chat` link-room crypto (tools/parley/link_crypto.*) against the
# vectors the browser client is tested with (tests/browser/vectors). Needs the
# parley_link_crypto target from tools/parley.
if(NOT TARGET parley_link_crypto)
  return()
endif()
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()
add_executable(link_crypto_test ${CMAKE_CURRENT_LIST_DIR}/link_crypto_test.cpp)
target_link_libraries(link_crypto_test PRIVATE parley_link_crypto GTest::gtest_main)
target_compile_options(link_crypto_test PRIVATE ${PARLEY_WARNINGS})
target_compile_definitions(link_crypto_test PRIVATE
  PARLEY_LINK_VECTORS_DIR="${CMAKE_SOURCE_DIR}/tests/browser/vectors")
add_test(NAME unit.link_crypto COMMAND link_crypto_test)
set_tests_properties(unit.link_crypto PROPERTIES LABELS unit)
