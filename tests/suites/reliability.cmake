# Reliability suite (issue 8): real processes with the agent preloaded, under
# bad input, fork/exec/spawn storms, bootstrap races, dlopen storms, thread
# churn and a flood of distinct stacks; real programs (python3, ls, bash,
# curl) run with and without the agent. tests/suites/reliability/.
#
# Sizes: PA_RELIABILITY_SCALE=ci (default, the whole suite fits the CI
# budget) or long (the closing-note figures); see reliability_test.cc.
#
# Not under TSan, which owns malloc and the mutex functions the agent
# interposes; see tests/integration/CMakeLists.txt.
if(PA_SANITIZE STREQUAL "thread")
  message(STATUS "reliability tests: skipped under PA_SANITIZE=thread")
  return()
endif()

find_program(PA_RELIABILITY_GO go)
if(NOT PA_RELIABILITY_GO)
  set(PA_RELIABILITY_GO "")
endif()

set(PA_REL_DIR ${CMAKE_CURRENT_LIST_DIR}/reliability)
set(PA_REL_PROGRAM_DIR ${CMAKE_CURRENT_BINARY_DIR}/reliability_programs)

set(_rel_programs "")
# rel_program (most scenarios) and rel_signals (signals_test.cc), each
# preloaded ("plain") and linked.
foreach(program rel_program rel_signals)
  foreach(flavour plain linked)
    set(target ${program}_${flavour})
    add_executable(${target} ${PA_REL_DIR}/programs/${program}.cc)
    target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
    target_compile_options(${target} PRIVATE -O2 -g)
    target_link_libraries(${target} PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
    set_target_properties(${target} PROPERTIES
      RUNTIME_OUTPUT_DIRECTORY ${PA_REL_PROGRAM_DIR})
    if(flavour STREQUAL "linked")
      target_link_libraries(${target} PRIVATE pprof_agent::pprof_agent)
      target_compile_definitions(${target} PRIVATE PA_IT_LINKED=1)
    endif()
    list(APPEND _rel_programs ${target})
  endforeach()
endforeach()

add_executable(rel_bootstrap_plain ${PA_REL_DIR}/programs/rel_bootstrap.cc)
target_link_libraries(rel_bootstrap_plain PRIVATE Threads::Threads)
set_target_properties(rel_bootstrap_plain PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${PA_REL_PROGRAM_DIR})

foreach(lib rel_ctorlib rel_dl)
  if(lib STREQUAL "rel_dl")
    add_library(${lib} SHARED ${PA_REL_DIR}/programs/rel_dl_lib.cc)
  else()
    add_library(${lib} SHARED ${PA_REL_DIR}/programs/${lib}.cc)
  endif()
  target_link_libraries(${lib} PRIVATE Threads::Threads)
  set_target_properties(${lib} PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY ${PA_REL_PROGRAM_DIR})
endforeach()
list(APPEND _rel_programs rel_bootstrap_plain rel_ctorlib rel_dl)

add_executable(reliability_test
  ${PA_REL_DIR}/reliability_test.cc
  ${PA_REL_DIR}/signals_test.cc
  ${PA_REL_DIR}/limits_test.cc
  ${PA_REL_DIR}/raw_http.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/subprocess.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/integration_util.cc)
target_include_directories(reliability_test PRIVATE ${CMAKE_SOURCE_DIR} ${HTTPLIB_INCLUDE_DIR})
target_link_libraries(reliability_test PRIVATE
  GTest::gtest GTest::gmock GTest::gtest_main ${HTTPLIB_LIB} Threads::Threads)
target_compile_definitions(reliability_test PRIVATE
  PA_IT_AGENT_SO="$<TARGET_FILE:pprof_agent>"
  PA_IT_PROGRAM_DIR="${PA_REL_PROGRAM_DIR}"
  PA_IT_GO="${PA_RELIABILITY_GO}")
add_dependencies(reliability_test pprof_agent ${_rel_programs})

# Label "reliability" (ctest -L reliability); names "reliability.<Suite>.<Test>".
gtest_discover_tests(reliability_test
  DISCOVERY_TIMEOUT 60
  TEST_PREFIX "reliability."
  PROPERTIES LABELS reliability TIMEOUT 170)
