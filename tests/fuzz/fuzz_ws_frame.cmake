# libFuzzer target for the WebSocket frame parser. Clang only, and only with PARLEY_FUZZ=ON.
# The codec sources are compiled into the fuzzer itself rather than linked from
# parley_ws_codec, so that they carry the coverage instrumentation libFuzzer steers by.
if(PARLEY_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PARLEY_FUZZ needs clang (libFuzzer); configure with CXX=clang++")
  endif()
  get_target_property(_ws_codec_dir parley_ws_codec SOURCE_DIR)
  get_target_property(_ws_codec_sources parley_ws_codec SOURCES)
  list(TRANSFORM _ws_codec_sources PREPEND "${_ws_codec_dir}/")
  add_executable(fuzz_ws_frame ${CMAKE_CURRENT_LIST_DIR}/fuzz_ws_frame.cpp ${_ws_codec_sources})
  target_include_directories(fuzz_ws_frame PRIVATE ${_ws_codec_dir})
  target_compile_features(fuzz_ws_frame PRIVATE cxx_std_20)
  # Without -fno-sanitize-recover, UBSan only prints and the fuzzer never sees a crash.
  set(_ws_fuzz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
  target_compile_options(fuzz_ws_frame PRIVATE ${_ws_fuzz_flags} -fno-omit-frame-pointer -g)
  target_link_options(fuzz_ws_frame PRIVATE ${_ws_fuzz_flags})
  # Replays the seed corpus only (-runs=0): a quick regression check, not a fuzzing session.
  add_test(NAME fuzz.ws_frame.corpus
           COMMAND fuzz_ws_frame -runs=0 ${CMAKE_CURRENT_LIST_DIR}/corpus/ws_frame)
  set_tests_properties(fuzz.ws_frame.corpus PROPERTIES LABELS fuzz)
endif()
