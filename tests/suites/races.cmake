# Races suite: the checked containers (pprof_agent/checked.h) and
# /debug/pprof/races on real processes (tests/suites/races/): the issue's seed
# program (10 writers, 5 iterating readers, no lock) reported with both
# sides, nothing reported for the same work under a shared_mutex, for
# readers only and for an AccessChecker class under a mutex, abort mode, and
# the wrappers against their std counterparts (races_wrappers_test).
#
# Not under TSan: the seed program races on purpose.
if(PA_SANITIZE STREQUAL "thread")
  message(STATUS "races tests: skipped under PA_SANITIZE=thread (the seed program races on purpose)")
  return()
endif()

find_program(PA_RACES_GO go)
if(NOT PA_RACES_GO)
  set(PA_RACES_GO "")
endif()

set(PA_RACES_DIR ${CMAKE_CURRENT_LIST_DIR}/races)
set(PA_RACES_PROGRAM_DIR ${CMAKE_CURRENT_BINARY_DIR}/races_programs)

# races_program_plain (LD_PRELOAD or no agent) and _linked
# (pprof_agent::Start), as tests/integration/integration_util.cc expects.
set(_races_programs "")
foreach(flavour plain linked)
  set(target races_program_${flavour})
  add_executable(${target} ${PA_RACES_DIR}/programs/races_program.cc)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/profiler/include)
  target_compile_options(${target} PRIVATE -O2 -g)
  target_link_libraries(${target} PRIVATE Threads::Threads)
  set_target_properties(${target} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PA_RACES_PROGRAM_DIR})
  if(flavour STREQUAL "linked")
    target_link_libraries(${target} PRIVATE pprof_agent::pprof_agent)
    target_compile_definitions(${target} PRIVATE PA_IT_LINKED=1)
  endif()
  list(APPEND _races_programs ${target})
endforeach()

# Every tests/suites/races/*_test.cc.
file(GLOB _races_tests CONFIGURE_DEPENDS ${PA_RACES_DIR}/*_test.cc)
add_executable(races_test
  ${_races_tests}
  ${CMAKE_SOURCE_DIR}/tests/integration/subprocess.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/integration_util.cc)
target_include_directories(races_test PRIVATE ${CMAKE_SOURCE_DIR} ${HTTPLIB_INCLUDE_DIR})
target_link_libraries(races_test PRIVATE
  GTest::gtest GTest::gmock GTest::gtest_main ${HTTPLIB_LIB} Threads::Threads)
target_compile_definitions(races_test PRIVATE
  PA_IT_AGENT_SO="$<TARGET_FILE:pprof_agent>"
  PA_IT_PROGRAM_DIR="${PA_RACES_PROGRAM_DIR}"
  PA_IT_GO="${PA_RACES_GO}")
add_dependencies(races_test pprof_agent ${_races_programs})

gtest_discover_tests(races_test
  DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS integration TIMEOUT 90)

# The wrappers against their std counterparts: no agent, no threads.
add_executable(races_wrappers_test ${PA_RACES_DIR}/unit/wrappers_test.cc)
target_include_directories(races_wrappers_test PRIVATE ${CMAKE_SOURCE_DIR}/profiler/include)
target_link_libraries(races_wrappers_test PRIVATE GTest::gtest GTest::gtest_main)
gtest_discover_tests(races_wrappers_test
  DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS unit TIMEOUT 60)
