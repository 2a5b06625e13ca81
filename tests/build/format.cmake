# Every C and C++ file git tracks is clang-formatted (.clang-format at the root): the style is a
# check, not a habit. Fix with: git ls-files '*.c' '*.cpp' '*.h' '*.hpp' | xargs clang-format-14 -i
find_program(PARLEY_CLANG_FORMAT NAMES clang-format-14 clang-format)
find_package(Git QUIET)
if(PARLEY_CLANG_FORMAT AND GIT_FOUND AND EXISTS ${CMAKE_SOURCE_DIR}/.git)
  add_test(NAME build.format
    COMMAND bash -c "git ls-files -z '*.c' '*.cpp' '*.h' '*.hpp' | xargs -0 '${PARLEY_CLANG_FORMAT}' --dry-run --Werror"
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(build.format PROPERTIES LABELS build TIMEOUT 300)
endif()
