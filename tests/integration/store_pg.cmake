# store-pg against a real, throwaway PostgreSQL: pg_env.sh starts a temp cluster (unix socket
# only, fsync on), runs the test with PARLEY_TEST_PG set, then stops and removes the cluster.
# Exit 77 (no PostgreSQL server installed) is reported as skipped.
if(NOT PARLEY_WITH_PG OR NOT TARGET parley_store_pg)
  return()
endif()
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()
if(NOT TARGET PkgConfig::PQ)
  pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)
endif()
add_executable(store_pg_test ${CMAKE_CURRENT_LIST_DIR}/store_pg_test.cpp)
target_link_libraries(store_pg_test PRIVATE parley::api GTest::gtest_main PkgConfig::PQ
  Threads::Threads ${CMAKE_DL_LIBS})
target_compile_definitions(store_pg_test PRIVATE
  STORE_PG_PLUGIN="$<TARGET_FILE:parley_store_pg>")
if(DEFINED PARLEY_WARNINGS)
  target_compile_options(store_pg_test PRIVATE ${PARLEY_WARNINGS})
endif()
# The test loads the plugin .so: building the test builds what it loads.
add_dependencies(store_pg_test parley_store_pg)
add_test(NAME integration.store_pg
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/pg_env.sh $<TARGET_FILE:store_pg_test>)
set_tests_properties(integration.store_pg PROPERTIES
  LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)
