# CPU profile suite (/debug/pprof/profile, profiler/cpu/cpu_profiler): real
# processes with per-thread CPU timers, read over HTTP and with
# `go tool pprof`. The unit tests are tests/profiler/cpu/cpu_profiler_test.cc and
# tests/http/cpu_handler_test.cc (built by tests/CMakeLists.txt).
#
# Not under TSan, as tests/integration is not.
if(PA_SANITIZE STREQUAL "thread")
  message(STATUS "cpu integration tests: skipped under PA_SANITIZE=thread")
  return()
endif()

find_program(PA_CPU_GO go)
if(NOT PA_CPU_GO)
  set(PA_CPU_GO "")
endif()

set(PA_CPU_DIR ${CMAKE_CURRENT_LIST_DIR}/cpu)
set(PA_CPU_PROGRAM_DIR ${CMAKE_CURRENT_BINARY_DIR}/cpu_programs)

# cpu_program_plain (LD_PRELOAD) and cpu_program_linked (pprof_agent::Start),
# named as tests/integration/integration_util.cc's StartProgram expects.
set(_cpu_programs "")
foreach(flavour plain linked)
  set(target cpu_program_${flavour})
  add_executable(${target} ${PA_CPU_DIR}/programs/cpu_program.cc)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(${target} PRIVATE -O2 -g)
  target_link_libraries(${target} PRIVATE Threads::Threads)
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PA_CPU_PROGRAM_DIR})
  if(flavour STREQUAL "linked")
    target_link_libraries(${target} PRIVATE pprof_agent::pprof_agent)
    target_compile_definitions(${target} PRIVATE PA_IT_LINKED=1)
  endif()
  list(APPEND _cpu_programs ${target})
endforeach()

add_executable(cpu_profile_test
  ${PA_CPU_DIR}/cpu_profile_test.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/subprocess.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/integration_util.cc)
target_include_directories(cpu_profile_test PRIVATE ${CMAKE_SOURCE_DIR} ${HTTPLIB_INCLUDE_DIR})
target_link_libraries(cpu_profile_test PRIVATE
  GTest::gtest GTest::gmock GTest::gtest_main ${HTTPLIB_LIB} Threads::Threads)
target_compile_definitions(cpu_profile_test PRIVATE
  PA_IT_AGENT_SO="$<TARGET_FILE:pprof_agent>"
  PA_IT_PROGRAM_DIR="${PA_CPU_PROGRAM_DIR}"
  PA_IT_GO="${PA_CPU_GO}")
add_dependencies(cpu_profile_test pprof_agent ${_cpu_programs})

# One lock for the whole suite: its tests measure CPU time and count the
# user's queued signals, so two of them must not run side by side.
gtest_discover_tests(cpu_profile_test
  DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS integration TIMEOUT 90 RESOURCE_LOCK pa_cpu_profile)
