// What the agent costs a host that is never asked anything: no TLS,
// compression or DWARF library mapped until the first request (the agent
// binds by itself and loads libpprof_agent_serve.so, which brings
// cpp-httplib, and libdw only when needed), and a host that is then sent
// requests is served as before. Read from /proc/PID/maps of real processes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

// Base names of the shared objects mapped into `pid`.
std::set<std::string> MappedLibraries(pid_t pid) {
  std::set<std::string> libs;
  for (const std::string& line :
       SplitLines(ReadFileText("/proc/" + std::to_string(pid) + "/maps"))) {
    const size_t slash = line.rfind('/');
    if (slash == std::string::npos) continue;
    const std::string name = line.substr(slash + 1);
    if (name.find(".so") != std::string::npos) libs.insert(name);
  }
  return libs;
}

// The mapped libraries whose name starts with one of `prefixes`.
std::vector<std::string> Matching(const std::set<std::string>& libs,
                                  const std::vector<std::string>& prefixes) {
  std::vector<std::string> out;
  for (const std::string& lib : libs) {
    for (const std::string& prefix : prefixes) {
      if (lib.rfind(prefix, 0) == 0) out.push_back(lib);
    }
  }
  return out;
}

const std::vector<std::string> kLazyLibraries = {
    "libssl", "libcrypto", "libbrotli", "libcpp-httplib",
#if !defined(PA_SANITIZE_ADDRESS)
    // ASan builds load libdw at start (CMakeLists.txt: LeakSanitizer's
    // tracer crashes in a process that dlopen'ed it).
    "libdw",
#endif
    "libpprof_agent_serve"};

class Footprint : public ::testing::TestWithParam<Flavour> {};

TEST_P(Footprint, NothingLazyIsMappedBeforeTheFirstRequestAndServesAfter) {
  std::string error;
  auto program = StartProgram("it_alloc", GetParam(), {"idle"}, EnvChanges(),
                              /*expect_server=*/true, &error);
  ASSERT_TRUE(program.has_value()) << error;
  const pid_t pid = program->process->pid();

  const std::set<std::string> before = MappedLibraries(pid);
  ASSERT_THAT(Matching(before, {"libpprof_agent"}), ::testing::Not(::testing::IsEmpty()))
      << "the agent itself should be mapped";
  EXPECT_THAT(Matching(before, kLazyLibraries), ::testing::IsEmpty());

  // A request loads the serving library (and httplib's dependencies) and is
  // answered; a symbolized profile loads libdw.
  const HttpResult index = HttpGet(program->port, "/debug/pprof/");
  EXPECT_EQ(index.status, 200) << index.error;
  EXPECT_THAT(index.body, ::testing::HasSubstr("heap"));
  const HttpResult heap = HttpGet(program->port, "/debug/pprof/heap?debug=1");
  EXPECT_EQ(heap.status, 200) << heap.error;
  const HttpResult symbol = HttpGet(program->port, "/debug/pprof/symbol");
  EXPECT_EQ(symbol.status, 200) << symbol.error;

  const std::set<std::string> after = MappedLibraries(pid);
  EXPECT_THAT(Matching(after, {"libpprof_agent_serve"}), ::testing::SizeIs(1));
  EXPECT_THAT(Matching(after, {"libcpp-httplib"}), ::testing::SizeIs(1));

  program->process->CloseStdin();
  const ExitStatus status = program->process->Wait(kExitTimeout);
  EXPECT_TRUE(status.exited && status.code == 0)
      << status.Describe() << "\n" << program->process->err();
}

INSTANTIATE_TEST_SUITE_P(Flavours, Footprint,
                         ::testing::Values(Flavour::kPreloaded, Flavour::kLinked),
                         [](const auto& info) { return std::string(FlavourName(info.param)); });

}  // namespace
}  // namespace pprof_agent::integration
