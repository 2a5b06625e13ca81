# Operations tests (issue 12): several profiles on one host, reload without drops, parley ctl,
# the systemd unit, the out-of-tree store-file example and the plugin READMEs. Real parleyd
# processes driven by node scripts (npm ws from tests/browser) or bash.
if(NOT TARGET parleyd OR NOT TARGET parley OR NOT TARGET parley_transport_ws
   OR NOT TARGET parley_store_memory OR NOT TARGET parley_relay)
  message(STATUS "integration.ops_*: parleyd, parley or a plugin missing, skipped")
  return()
endif()
set(_ops_env "PARLEYD=$<TARGET_FILE:parleyd>;PARLEY_CLI=$<TARGET_FILE:parley>")

add_test(NAME integration.ops_multi_profile
  COMMAND node --test --test-concurrency=1 ops_multi_profile.test.mjs
  WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
add_test(NAME integration.ops_reload
  COMMAND node --test --test-concurrency=1 ops_reload.test.mjs
  WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
add_test(NAME integration.ops_ctl
  COMMAND node --test --test-concurrency=1 ops_ctl.test.mjs
  WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
set_tests_properties(integration.ops_multi_profile integration.ops_reload integration.ops_ctl
  PROPERTIES LABELS integration TIMEOUT 180 ENVIRONMENT "${_ops_env}")

# Installs the tree (needs a complete build) and builds examples/store-file against it.
add_test(NAME integration.ops_store_file
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/ops_store_file_test.sh ${CMAKE_BINARY_DIR}
          ${CMAKE_SOURCE_DIR})
set_tests_properties(integration.ops_store_file PROPERTIES LABELS integration TIMEOUT 600)

# systemd-analyze verify of etc/parley@.service, then its ExecStartPre/ExecStart lines run
# against an install prefix; with PARLEY_DEB=1 also cpack -G DEB + dpkg-deb --contents.
add_test(NAME integration.ops_systemd
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/ops_systemd_test.sh ${CMAKE_BINARY_DIR}
          ${CMAKE_SOURCE_DIR})
set_tests_properties(integration.ops_systemd PROPERTIES LABELS integration TIMEOUT 900
  SKIP_RETURN_CODE 77)

# Every plugin README lists every config key its plugin declares (parleyd --describe-plugin).
add_test(NAME integration.ops_plugin_readmes
  COMMAND python3 ${CMAKE_SOURCE_DIR}/scripts/plugin-keys-md.py --check
          $<TARGET_FILE:parleyd> ${CMAKE_SOURCE_DIR}/plugins)
set_tests_properties(integration.ops_plugin_readmes PROPERTIES LABELS integration TIMEOUT 60)

# Config key rows wider than the host's struct (a plugin built for a newer minor) are walked by
# their own struct_size (kernel/loader.cpp copy_config_rows).
parley_add_plugin(ops_wide_rows_plugin wide-rows NO_INSTALL
  OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/ops-plugins
  ${CMAKE_CURRENT_LIST_DIR}/ops_wide_rows_plugin.cpp)
add_test(NAME integration.ops_abi_rows
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/ops_abi_rows_test.sh $<TARGET_FILE:parleyd>
          $<TARGET_FILE:ops_wide_rows_plugin>)
set_tests_properties(integration.ops_abi_rows PROPERTIES LABELS integration TIMEOUT 60)
