# Symbols suite: file:line and inlined frames (profiler/symbols/dwarf_reader,
# profiler/symbols/symbolizer), checked in two ways.
#
# 1. Fixtures for the unit tests tests/profiler/{symbolizer,dwarf_reader}_test
#    (built by tests/CMakeLists.txt): a small -O2 -g library in the variants
#    a service meets (its own DWARF, stripped with a .gnu_debuglink, stripped
#    without one, no build id), whose paths reach the tests through compile
#    definitions.
# 2. Integration tests (symbols_test): a real -O2 -g program with the agent
#    preloaded or linked, read with `go tool pprof`, readelf and the
#    generated protobuf classes. Skipped under TSan, as
#    tests/integration is.

set(PA_SYM_DIR ${CMAKE_CURRENT_LIST_DIR}/symbols)
set(PA_SYM_FIXTURE_DIR ${CMAKE_CURRENT_BINARY_DIR}/symbols_fixtures)

# --- 1. DWARF fixtures ----------------------------------------------------------
# -O2 -g whatever the build type: the tests need inlining and DWARF.
foreach(variant pa_dwarf_fixture pa_dwarf_fixture_noid)
  add_library(${variant} SHARED ${PA_SYM_DIR}/fixtures/dwarf_fixture.cc)
  target_include_directories(${variant} PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(${variant} PRIVATE -O2 -g)
  set_target_properties(${variant} PROPERTIES
    NO_SONAME ON
    LIBRARY_OUTPUT_DIRECTORY ${PA_SYM_FIXTURE_DIR})
endforeach()
target_link_options(pa_dwarf_fixture_noid PRIVATE -Wl,--build-id=none)
target_link_options(pa_dwarf_fixture PRIVATE -Wl,--build-id)

# Stripped variants, made from the built libraries as distributions make
# them: objcopy --only-keep-debug, then --strip-debug (+ --add-gnu-debuglink,
# which records the debug file's base name and CRC). The debug files sit in
# .debug/ beside the library, one of the places GDB (and we) look.
set(_fx ${PA_SYM_FIXTURE_DIR})
if(CMAKE_OBJCOPY)
  set(PA_SYM_OBJCOPY ${CMAKE_OBJCOPY})
else()
  find_program(PA_SYM_OBJCOPY objcopy REQUIRED)
endif()
add_custom_command(
  OUTPUT ${_fx}/libpa_dwarf_fixture_debuglink.so
         ${_fx}/.debug/libpa_dwarf_fixture_debuglink.so.debug
         ${_fx}/libpa_dwarf_fixture_nodebug.so
         ${_fx}/libpa_dwarf_fixture.debug
         ${_fx}/libpa_dwarf_fixture_noid_debuglink.so
         ${_fx}/.debug/libpa_dwarf_fixture_noid_debuglink.so.debug
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_fx}/.debug
  COMMAND ${PA_SYM_OBJCOPY} --only-keep-debug $<TARGET_FILE:pa_dwarf_fixture>
          ${_fx}/.debug/libpa_dwarf_fixture_debuglink.so.debug
  COMMAND ${PA_SYM_OBJCOPY} --strip-debug
          --add-gnu-debuglink=${_fx}/.debug/libpa_dwarf_fixture_debuglink.so.debug
          $<TARGET_FILE:pa_dwarf_fixture> ${_fx}/libpa_dwarf_fixture_debuglink.so
  COMMAND ${PA_SYM_OBJCOPY} --only-keep-debug $<TARGET_FILE:pa_dwarf_fixture>
          ${_fx}/libpa_dwarf_fixture.debug
  COMMAND ${PA_SYM_OBJCOPY} --strip-debug $<TARGET_FILE:pa_dwarf_fixture>
          ${_fx}/libpa_dwarf_fixture_nodebug.so
  COMMAND ${PA_SYM_OBJCOPY} --only-keep-debug $<TARGET_FILE:pa_dwarf_fixture_noid>
          ${_fx}/.debug/libpa_dwarf_fixture_noid_debuglink.so.debug
  COMMAND ${PA_SYM_OBJCOPY} --strip-debug
          --add-gnu-debuglink=${_fx}/.debug/libpa_dwarf_fixture_noid_debuglink.so.debug
          $<TARGET_FILE:pa_dwarf_fixture_noid> ${_fx}/libpa_dwarf_fixture_noid_debuglink.so
  DEPENDS pa_dwarf_fixture pa_dwarf_fixture_noid
  COMMENT "Stripping the DWARF fixtures"
  VERBATIM)
add_custom_target(pa_dwarf_fixtures DEPENDS
  ${_fx}/libpa_dwarf_fixture_debuglink.so
  ${_fx}/libpa_dwarf_fixture_noid_debuglink.so)

foreach(test profiler_symbolizer_test profiler_dwarf_reader_test)
  if(TARGET ${test})
    add_dependencies(${test} pa_dwarf_fixtures)
    # The test's own functions are looked up in its DWARF too.
    target_compile_options(${test} PRIVATE -g)
    target_compile_definitions(${test} PRIVATE PA_SYM_FIXTURE_DIR="${_fx}")
  endif()
endforeach()

# --- 2. Integration tests ---------------------------------------------------------
# Not under TSan, which owns malloc and the mutex functions the agent
# interposes; see tests/integration/CMakeLists.txt.
if(PA_SANITIZE STREQUAL "thread")
  message(STATUS "symbols integration tests: skipped under PA_SANITIZE=thread")
  return()
endif()

find_program(PA_SYM_GO go)
if(NOT PA_SYM_GO)
  set(PA_SYM_GO "")
endif()
find_program(PA_SYM_READELF NAMES readelf ${CMAKE_READELF})
if(NOT PA_SYM_READELF)
  set(PA_SYM_READELF "")
endif()

set(PA_SYM_PROGRAM_DIR ${CMAKE_CURRENT_BINARY_DIR}/symbols_programs)

# The library the program dlopens and dlcloses.
add_library(pa_sym_dl SHARED ${PA_SYM_DIR}/programs/sym_dl_lib.cc)
target_compile_options(pa_sym_dl PRIVATE -O2 -g)
target_link_options(pa_sym_dl PRIVATE -Wl,--build-id)
set_target_properties(pa_sym_dl PROPERTIES
  NO_SONAME ON
  LIBRARY_OUTPUT_DIRECTORY ${PA_SYM_PROGRAM_DIR})

# sym_program_plain (LD_PRELOAD) and sym_program_linked (pprof_agent::Start),
# named as tests/integration/integration_util.cc's StartProgram expects.
set(_sym_programs "")
foreach(flavour plain linked)
  set(target sym_program_${flavour})
  add_executable(${target} ${PA_SYM_DIR}/programs/sym_program.cc)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(${target} PRIVATE -O2 -g)
  target_link_options(${target} PRIVATE -Wl,--build-id)
  target_link_libraries(${target} PRIVATE ${CMAKE_DL_LIBS})
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PA_SYM_PROGRAM_DIR})
  if(flavour STREQUAL "linked")
    target_link_libraries(${target} PRIVATE pprof_agent::pprof_agent)
    target_compile_definitions(${target} PRIVATE PA_IT_LINKED=1)
  endif()
  list(APPEND _sym_programs ${target})
endforeach()

add_executable(symbols_test
  ${PA_SYM_DIR}/symbols_test.cc
  ${PA_SYM_DIR}/symbols_util.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/subprocess.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/integration_util.cc)
target_include_directories(symbols_test PRIVATE ${CMAKE_SOURCE_DIR} ${HTTPLIB_INCLUDE_DIR})
target_link_libraries(symbols_test PRIVATE
  pa_profile_pb ${ZLIB_STATIC}
  GTest::gtest GTest::gmock GTest::gtest_main ${HTTPLIB_LIB} Threads::Threads)
target_compile_definitions(symbols_test PRIVATE
  PA_IT_AGENT_SO="$<TARGET_FILE:pprof_agent>"
  PA_IT_PROGRAM_DIR="${PA_SYM_PROGRAM_DIR}"
  PA_IT_GO="${PA_SYM_GO}"
  PA_SYM_READELF="${PA_SYM_READELF}"
  PA_SYM_DL_LIB="$<TARGET_FILE:pa_sym_dl>"
  PA_SYM_PROGRAM_SOURCE="${PA_SYM_DIR}/programs/sym_program.cc"
  PA_SYM_DL_SOURCE="${PA_SYM_DIR}/programs/sym_dl_lib.cc")
add_dependencies(symbols_test pprof_agent pa_sym_dl ${_sym_programs})

gtest_discover_tests(symbols_test
  DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS integration TIMEOUT 90)
