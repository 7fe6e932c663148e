# Containers suite (issue 7): container labels, /debug/pprof/lifetimes and
# the thread of origin, checked on a real program with the agent preloaded
# or linked, read with `go tool pprof` and the generated protobuf classes.
# The unit tests of the pattern table and of the lifetime snapshot are
# tests/profiler/container_*_test.cc (built by tests/CMakeLists.txt).
#
# Not under TSan, which owns malloc and the mutex functions the agent
# interposes; see tests/integration/CMakeLists.txt.
if(PA_SANITIZE STREQUAL "thread")
  message(STATUS "containers integration tests: skipped under PA_SANITIZE=thread")
  return()
endif()

find_program(PA_CT_GO go)
if(NOT PA_CT_GO)
  set(PA_CT_GO "")
endif()

set(PA_CT_DIR ${CMAKE_CURRENT_LIST_DIR}/containers)
set(PA_CT_PROGRAM_DIR ${CMAKE_CURRENT_BINARY_DIR}/containers_programs)

# ct_program_plain (LD_PRELOAD) and ct_program_linked (pprof_agent::Start),
# named as tests/integration/integration_util.cc's StartProgram expects.
# -O2 -g whatever the build type: the container frames are inlined as they
# are in a service, and DWARF names them.
set(_ct_programs "")
foreach(flavour plain linked)
  set(target ct_program_${flavour})
  add_executable(${target} ${PA_CT_DIR}/programs/container_program.cc)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(${target} PRIVATE -O2 -g)
  target_link_libraries(${target} PRIVATE Threads::Threads)
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PA_CT_PROGRAM_DIR})
  if(flavour STREQUAL "linked")
    target_link_libraries(${target} PRIVATE pprof_agent::pprof_agent)
    target_compile_definitions(${target} PRIVATE PA_IT_LINKED=1)
  endif()
  list(APPEND _ct_programs ${target})
endforeach()

add_executable(containers_test
  ${PA_CT_DIR}/containers_test.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/subprocess.cc
  ${CMAKE_SOURCE_DIR}/tests/integration/integration_util.cc)
target_include_directories(containers_test PRIVATE ${CMAKE_SOURCE_DIR} ${HTTPLIB_INCLUDE_DIR})
target_link_libraries(containers_test PRIVATE
  pa_profile_pb ${ZLIB_STATIC}
  GTest::gtest GTest::gmock GTest::gtest_main ${HTTPLIB_LIB} Threads::Threads)
target_compile_definitions(containers_test PRIVATE
  PA_IT_AGENT_SO="$<TARGET_FILE:pprof_agent>"
  PA_IT_PROGRAM_DIR="${PA_CT_PROGRAM_DIR}"
  PA_IT_GO="${PA_CT_GO}")
add_dependencies(containers_test pprof_agent ${_ct_programs})

gtest_discover_tests(containers_test
  DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS integration TIMEOUT 90)
