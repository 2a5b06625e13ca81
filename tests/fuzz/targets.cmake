# libFuzzer targets (clang only, PARLEY_FUZZ=ON). Each compiles the sources it exercises into
# the fuzzer itself rather than linking the project's static libraries, so that they carry the
# coverage instrumentation libFuzzer steers by. Seeds: tests/fuzz/corpus/<name without fuzz_>.
# Each target gets a fuzz.<name>.corpus test replaying its seed corpus (-runs=0).
if(NOT PARLEY_FUZZ)
  return()
endif()
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "PARLEY_FUZZ needs clang (libFuzzer); configure with CXX=clang++")
endif()

# Without -fno-sanitize-recover, UBSan only prints and the fuzzer never sees a crash.
set(_fuzz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)

# Absolute source paths of a library target.
function(_parley_fuzz_sources out target)
  get_target_property(_dir ${target} SOURCE_DIR)
  get_target_property(_srcs ${target} SOURCES)
  list(FILTER _srcs INCLUDE REGEX "\\.(c|cc|cpp)$")
  list(TRANSFORM _srcs PREPEND "${_dir}/")
  set(${out} ${_srcs} PARENT_SCOPE)
endfunction()

#   parley_fuzz_target(<name> SOURCES <srcs...> [INCLUDES <dirs...>] [LIBS <libs...>])
function(parley_fuzz_target name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;INCLUDES;LIBS")
  add_executable(fuzz_${name} ${CMAKE_CURRENT_LIST_DIR}/fuzz_${name}.cpp ${arg_SOURCES})
  target_include_directories(fuzz_${name} PRIVATE ${arg_INCLUDES})
  target_link_libraries(fuzz_${name} PRIVATE ${arg_LIBS})
  target_compile_features(fuzz_${name} PRIVATE cxx_std_20)
  target_compile_options(fuzz_${name} PRIVATE ${_fuzz_flags} -fno-omit-frame-pointer -g)
  target_link_options(fuzz_${name} PRIVATE ${_fuzz_flags})
  # Replays the seed corpus only: a quick regression check, not a fuzzing session.
  add_test(NAME fuzz.${name}.corpus
           COMMAND fuzz_${name} -runs=0 ${CMAKE_CURRENT_LIST_DIR}/corpus/${name})
  set_tests_properties(fuzz.${name}.corpus PROPERTIES LABELS fuzz TIMEOUT 120)
endfunction()

_parley_fuzz_sources(_codec parley_ws_codec)
get_target_property(_codec_dir parley_ws_codec SOURCE_DIR)
parley_fuzz_target(ws_frame SOURCES ${_codec} INCLUDES ${_codec_dir})
parley_fuzz_target(http_head SOURCES ${_codec} INCLUDES ${_codec_dir})

if(TARGET parley_dialects)
  # The dialects' own imported simdjson target is local to their directory.
  pkg_check_modules(FUZZ_SIMDJSON REQUIRED IMPORTED_TARGET simdjson)
  _parley_fuzz_sources(_dialects parley_dialects)
  get_target_property(_dialects_dir parley_dialects SOURCE_DIR)
  parley_fuzz_target(dialect SOURCES ${_dialects}
    INCLUDES ${_dialects_dir} ${PROJECT_SOURCE_DIR}/plugins/common
    LIBS parley::api PkgConfig::FUZZ_SIMDJSON PkgConfig::SODIUM)
endif()

_parley_fuzz_sources(_config parley_config)
parley_fuzz_target(profile
  SOURCES ${_config} ${PROJECT_SOURCE_DIR}/kernel/profile.cpp ${PROJECT_SOURCE_DIR}/kernel/loader.cpp
  INCLUDES ${PROJECT_SOURCE_DIR}/kernel
  LIBS parley::api yaml-cpp ${CMAKE_DL_LIBS})
target_compile_definitions(fuzz_profile PRIVATE PARLEY_PLUGIN_RELDIR="${PARLEY_PLUGIN_INSTALL_DIR}")

# transport-nats' federated frame filter and argument splitter (federation_common.cpp). Only the
# libnats headers are needed, not the library.
set(_nats_dir ${PROJECT_SOURCE_DIR}/plugins/transport-nats)
if(EXISTS ${_nats_dir}/federation_common.cpp)
  pkg_check_modules(FUZZ_NATS QUIET libnats)
  if(FUZZ_NATS_FOUND)
    if(NOT TARGET PkgConfig::FUZZ_SIMDJSON)
      pkg_check_modules(FUZZ_SIMDJSON REQUIRED IMPORTED_TARGET simdjson)
    endif()
    parley_fuzz_target(nats_frame SOURCES ${_nats_dir}/federation_common.cpp
      INCLUDES ${_nats_dir} ${PROJECT_SOURCE_DIR}/plugins/common ${FUZZ_NATS_INCLUDE_DIRS}
      LIBS parley::api PkgConfig::FUZZ_SIMDJSON PkgConfig::SODIUM)
  endif()
endif()

# transport-nats' signed envelope parser and receive checks (federation_envelope.cpp): plain
# libsodium, no libnats needed.
if(EXISTS ${_nats_dir}/federation_envelope.cpp)
  parley_fuzz_target(nats_envelope SOURCES ${_nats_dir}/federation_envelope.cpp
    INCLUDES ${_nats_dir} LIBS PkgConfig::SODIUM)
endif()
