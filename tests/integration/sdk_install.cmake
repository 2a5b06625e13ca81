# Installs the SDK into a scratch prefix and builds examples/plugin-hello against it, as a
# third-party plugin author would. Leaves <build>/examples-out/parley-hello.so for the kernel
# integration tests (they can depend on the fixture parley_hello_plugin).
add_test(NAME integration.sdk_install
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/sdk_install_test.sh ${CMAKE_BINARY_DIR}
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(integration.sdk_install PROPERTIES
  LABELS integration
  FIXTURES_SETUP parley_hello_plugin
  TIMEOUT 600)
