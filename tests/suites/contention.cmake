# Contention suite: the mutex and block profiles of real processes
# (tests/suites/contention/): Go's contention test adapted, the semantics
# matrix over every lock kind with and without the agent, Go's text format,
# deltas, and `go tool pprof` over HTTP. The unit tests of the pure parts are
# tests/profiler/contention_*_test.cc (built by tests/CMakeLists.txt).
#
# Not under TSan, which owns malloc and the mutex functions the agent
# interposes; see tests/integration/CMakeLists.txt.
if(PA_SANITIZE STREQUAL "thread")
  message(STATUS "contention tests: skipped under PA_SANITIZE=thread")
  return()
endif()

find_program(PA_CONTENTION_GO go)
if(NOT PA_CONTENTION_GO)
  set(PA_CONTENTION_GO "")
endif()

set(PA_CONTENTION_DIR ${CMAKE_CURRENT_LIST_DIR}/contention)
set(PA_CONTENTION_PROGRAM_DIR ${CMAKE_CURRENT_BINARY_DIR}/contention_programs)

# contention_program_plain (LD_PRELOAD or no agent) and _linked
# (pprof_agent::Start), as tests/integration/integration_util.cc expects.
set(_contention_programs "")
foreach(flavour plain linked)
  set(target contention_program_${flavour})
  add_executable(${target} ${PA_CONTENTION_DIR}/programs/contention_program.cc)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(${target} PRIVATE -O2 -g)
  target_link_libraries(${target} PRIVATE Threads::Threads)
  set_target_properties(${target} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PA_CONTENTION_PROGRAM_DIR})
  if(flavour STREQUAL "linked")
    target_link_libraries(${target} PRIVATE pprof_agent::pprof_agent)
    target_compile_definitions(${target} PRIVATE PA_IT_LINKED=1)
  endif()
  list(APPEND _contention_programs ${target})
endforeach()

add_executable(contention_test
  ${PA_CONTENTION_DIR}/contention_test.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/subprocess.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/integration_util.cc)
target_include_directories(contention_test PRIVATE ${CMAKE_SOURCE_DIR} ${HTTPLIB_INCLUDE_DIR})
target_link_libraries(contention_test PRIVATE
  GTest::gtest GTest::gmock GTest::gtest_main ${HTTPLIB_LIB} Threads::Threads)
target_compile_definitions(contention_test PRIVATE
  PA_IT_AGENT_SO="$<TARGET_FILE:pprof_agent>"
  PA_IT_PROGRAM_DIR="${PA_CONTENTION_PROGRAM_DIR}"
  PA_IT_GO="${PA_CONTENTION_GO}")
add_dependencies(contention_test pprof_agent ${_contention_programs})

gtest_discover_tests(contention_test
  DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS integration TIMEOUT 90)
