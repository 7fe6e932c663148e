# Threads suite: /debug/pprof/goroutine (thread dumps with wait-for chains
# and deadlocks) and /debug/pprof/threadcreate on real processes
# (tests/suites/threads/): a lock-order inversion named in debug=2, a third
# waiter's chain into it, 500 sleeping threads with their stacks, a thread
# that blocks every signal, thread-creation counts, scale (1000 threads),
# threads exiting mid-dump, concurrent requests, and `go tool pprof` over
# HTTP. The unit tests of the pure parts are tests/profiler/thread_dump_*.
#
# Not under TSan, which owns malloc and the mutex functions the agent
# interposes; see tests/integration/CMakeLists.txt.
if(PA_SANITIZE STREQUAL "thread")
  message(STATUS "threads tests: skipped under PA_SANITIZE=thread")
  return()
endif()

find_program(PA_THREADS_GO go)
if(NOT PA_THREADS_GO)
  set(PA_THREADS_GO "")
endif()

set(PA_THREADS_DIR ${CMAKE_CURRENT_LIST_DIR}/threads)
set(PA_THREADS_PROGRAM_DIR ${CMAKE_CURRENT_BINARY_DIR}/threads_programs)

# threads_program_plain (LD_PRELOAD or no agent) and _linked
# (pprof_agent::Start), as tests/integration/integration_util.cc expects.
set(_threads_programs "")
foreach(flavour plain linked)
  set(target threads_program_${flavour})
  add_executable(${target} ${PA_THREADS_DIR}/programs/threads_program.cc)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(${target} PRIVATE -O2 -g)
  target_link_libraries(${target} PRIVATE Threads::Threads)
  set_target_properties(${target} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${PA_THREADS_PROGRAM_DIR})
  if(flavour STREQUAL "linked")
    target_link_libraries(${target} PRIVATE pprof_agent::pprof_agent)
    target_compile_definitions(${target} PRIVATE PA_IT_LINKED=1)
  endif()
  list(APPEND _threads_programs ${target})
endforeach()

# Every tests/suites/threads/*_test.cc (goroutine, threadcreate).
file(GLOB _threads_tests CONFIGURE_DEPENDS ${PA_THREADS_DIR}/*_test.cc)
add_executable(threads_test
  ${_threads_tests}
  ${CMAKE_SOURCE_DIR}/tests/integration/subprocess.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/integration_util.cc)
target_include_directories(threads_test PRIVATE ${CMAKE_SOURCE_DIR} ${HTTPLIB_INCLUDE_DIR})
target_link_libraries(threads_test PRIVATE
  GTest::gtest GTest::gmock GTest::gtest_main ${HTTPLIB_LIB} Threads::Threads)
target_compile_definitions(threads_test PRIVATE
  PA_IT_AGENT_SO="$<TARGET_FILE:pprof_agent>"
  PA_IT_PROGRAM_DIR="${PA_THREADS_PROGRAM_DIR}"
  PA_IT_GO="${PA_THREADS_GO}")
add_dependencies(threads_test pprof_agent ${_threads_programs})

gtest_discover_tests(threads_test
  DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS integration TIMEOUT 90)
