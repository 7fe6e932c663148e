# Symbols suite: file:line and inlined frames (profiler/dwarf_reader,
# profiler/symbolizer), checked in two ways.
#
# 1. Fixtures for the unit tests tests/profiler/{symbolizer,dwarf_reader}_test
#    (built by tests/CMakeLists.txt): a small -O2 -g library in the variants
#    a service meets (its own DWARF, stripped with a .gnu_debuglink, stripped
#    without one, no build id), whose paths reach the tests through compile
#    definitions.
# 2. Integration tests (symbols_test): a real -O2 -g program with the agent
#    preloaded or linked, read with `go tool pprof`, readelf and the
#    generated protobuf classes. Skipped under PA_SANITIZE, as
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
add_custom_command(
  OUTPUT ${_fx}/libpa_dwarf_fixture_debuglink.so
         ${_fx}/.debug/libpa_dwarf_fixture_debuglink.so.debug
         ${_fx}/libpa_dwarf_fixture_nodebug.so
         ${_fx}/libpa_dwarf_fixture.debug
         ${_fx}/libpa_dwarf_fixture_noid_debuglink.so
         ${_fx}/.debug/libpa_dwarf_fixture_noid_debuglink.so.debug
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_fx}/.debug
  COMMAND ${CMAKE_OBJCOPY} --only-keep-debug $<TARGET_FILE:pa_dwarf_fixture>
          ${_fx}/.debug/libpa_dwarf_fixture_debuglink.so.debug
  COMMAND ${CMAKE_OBJCOPY} --strip-debug
          --add-gnu-debuglink=${_fx}/.debug/libpa_dwarf_fixture_debuglink.so.debug
          $<TARGET_FILE:pa_dwarf_fixture> ${_fx}/libpa_dwarf_fixture_debuglink.so
  COMMAND ${CMAKE_OBJCOPY} --only-keep-debug $<TARGET_FILE:pa_dwarf_fixture>
          ${_fx}/libpa_dwarf_fixture.debug
  COMMAND ${CMAKE_OBJCOPY} --strip-debug $<TARGET_FILE:pa_dwarf_fixture>
          ${_fx}/libpa_dwarf_fixture_nodebug.so
  COMMAND ${CMAKE_OBJCOPY} --only-keep-debug $<TARGET_FILE:pa_dwarf_fixture_noid>
          ${_fx}/.debug/libpa_dwarf_fixture_noid_debuglink.so.debug
  COMMAND ${CMAKE_OBJCOPY} --strip-debug
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
