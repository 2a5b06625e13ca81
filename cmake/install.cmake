# Installation and packaging: the plugin SDK (headers, CMake package `parley`, pkg-config
# `parley`), the operator files under etc/, and CPack settings for a Debian package.
# Included from the top-level CMakeLists.txt after every target is defined.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

get_filename_component(_parley_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(PARLEY_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/parley)
if(NOT DEFINED PARLEY_PLUGIN_INSTALL_DIR)
  set(PARLEY_PLUGIN_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/parley/plugins)
endif()

# ---- SDK: headers and the parley::api target ----

file(GLOB _parley_headers CONFIGURE_DEPENDS "${_parley_root}/include/parley/*.h*")
install(FILES ${_parley_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/parley COMPONENT dev)

# Exported as parley::api, the same name in-tree code links against.
set_target_properties(parley_api PROPERTIES EXPORT_NAME api)
install(TARGETS parley_api EXPORT parleyTargets COMPONENT dev)
install(EXPORT parleyTargets NAMESPACE parley:: DESTINATION ${PARLEY_CMAKE_INSTALL_DIR}
        COMPONENT dev)

configure_package_config_file(
  "${_parley_root}/cmake/parleyConfig.cmake.in" "${CMAKE_CURRENT_BINARY_DIR}/parleyConfig.cmake"
  INSTALL_DESTINATION ${PARLEY_CMAKE_INSTALL_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR PARLEY_PLUGIN_INSTALL_DIR)
# While the ABI is 0.x every minor may change the layout: 0.1 accepts 0.1.* only.
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/parleyConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/parleyConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/parleyConfigVersion.cmake"
        DESTINATION ${PARLEY_CMAKE_INSTALL_DIR} COMPONENT dev)

# ---- pkg-config ----
# Generated at install time so `cmake --install --prefix X` and CPack (which install to a
# prefix other than the configured one) get a .pc whose paths match where files really went.
set(_parley_pc "${CMAKE_CURRENT_BINARY_DIR}/parley.pc")
install(CODE "
  set(PARLEY_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(PARLEY_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(PARLEY_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  foreach(_v PARLEY_PC_LIBDIR PARLEY_PC_INCLUDEDIR)
    if(NOT IS_ABSOLUTE \"\${\${_v}}\")
      set(\${_v} \"\\\${prefix}/\${\${_v}}\")
    endif()
  endforeach()
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  configure_file(\"${_parley_root}/cmake/parley.pc.in\" \"${_parley_pc}\" @ONLY)
" COMPONENT dev)
install(FILES "${_parley_pc}" DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# ---- operator files: profiles and the systemd template unit ----

# GNUInstallDirs maps etc to /etc only in the FULL variable when the prefix is /usr; use it
# there so the Debian package ships /etc/parley, and stay under the prefix everywhere else.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" AND NOT IS_ABSOLUTE "${CMAKE_INSTALL_SYSCONFDIR}")
  set(PARLEY_SYSCONF_INSTALL_DIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/parley)
else()
  set(PARLEY_SYSCONF_INSTALL_DIR ${CMAKE_INSTALL_SYSCONFDIR}/parley)
endif()
file(GLOB _parley_profiles CONFIGURE_DEPENDS "${_parley_root}/etc/*.yaml")
if(_parley_profiles)
  install(FILES ${_parley_profiles} DESTINATION ${PARLEY_SYSCONF_INSTALL_DIR} COMPONENT runtime)
endif()
# Profiles in /etc are operator-edited: dpkg must keep local changes on upgrade (conffiles).
if(_parley_profiles AND IS_ABSOLUTE "${PARLEY_SYSCONF_INSTALL_DIR}")
  set(_parley_conffiles "")
  foreach(_p ${_parley_profiles})
    get_filename_component(_n "${_p}" NAME)
    string(APPEND _parley_conffiles "${PARLEY_SYSCONF_INSTALL_DIR}/${_n}\n")
  endforeach()
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/debian/conffiles" "${_parley_conffiles}")
  set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${CMAKE_CURRENT_BINARY_DIR}/debian/conffiles")
endif()
if(EXISTS "${_parley_root}/etc/parley@.service")
  install(FILES "${_parley_root}/etc/parley@.service" DESTINATION lib/systemd/system
          COMPONENT runtime)
endif()

# ---- CPack: one .deb with everything ----
# Configure with -DCMAKE_INSTALL_PREFIX=/usr for packaging: the DEB generator installs under
# /usr, and GNUInstallDirs picks the multiarch libdir and /etc only for that prefix.

set(PARLEY_PACKAGE_CONTACT "parley maintainers <parley@example.invalid>"
    CACHE STRING "Maintainer named in the Debian package")
set(CPACK_PACKAGE_NAME parley)
set(CPACK_PACKAGE_VENDOR parley)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Plugin-based chat gateway (parleyd, plugins, plugin SDK)")
set(CPACK_PACKAGE_CONTACT "${PARLEY_PACKAGE_CONTACT}")
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${PARLEY_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# dpkg-shlibdeps derives Depends (libpoco, libsodium, libzmq, libpq, ...) from the binaries.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
if(PROJECT_IS_TOP_LEVEL)
  include(CPack)
endif()
