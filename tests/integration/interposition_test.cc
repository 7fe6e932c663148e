// The malloc-family and operator new/delete interposition in real processes:
// it_matrix prints one canonical line per check (result class, errno,
// alignment, usable size, zeroing, realloc's copy). The lines must be the
// same with no agent, preloaded at rate 1 (every allocation takes the
// sampled path), preloaded at the default rate, and linked at rate 1; and at
// rate 1 the heap profile shows the operator new call sites exactly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tests/integration/integration_util.h"

namespace pprof_agent::integration {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

struct MatrixRun {
  std::vector<std::string> checks;  // stdout lines up to DONE, START removed
  std::string err;
};

// Runs it_matrix; `inspect` (if set) runs while the program holds its
// blocks, before stdin is closed.
MatrixRun RunMatrix(Flavour flavour, const std::string& rate,
                    const std::function<void(const AgentProgram&)>& inspect = {}) {
  SCOPED_TRACE(std::string(FlavourName(flavour)) + " rate=" + rate);
  MatrixRun run;
  EnvChanges env;
  if (!rate.empty()) env.set["PPROF_AGENT_HEAP_RATE"] = rate;
  std::string error;
  auto program = StartProgram("it_matrix", flavour, {}, env,
                              flavour != Flavour::kNone, &error);
  EXPECT_TRUE(program.has_value()) << error;
  if (!program.has_value()) return run;
  if (inspect) inspect(*program);
  program->process->CloseStdin();
  const ExitStatus status = program->process->Wait(kExitTimeout);
  EXPECT_TRUE(status.exited && status.code == 0)
      << status.Describe() << "\n" << program->process->err();
  for (const std::string& line : program->process->OutLines()) {
    if (line == "DONE") break;
    if (line.rfind("START ", 0) == 0) continue;  // the linked flavour's port
    run.checks.push_back(line);
  }
  run.err = program->process->err();
  // The agent logs its serving line and nothing else: no warnings, no drops.
  for (const std::string& line : program->process->ErrLines()) {
    EXPECT_THAT(line, HasSubstr("serving on")) << "unexpected stderr line";
  }
  return run;
}

void ExpectSameChecks(const MatrixRun& reference, const MatrixRun& run,
                      const std::string& name) {
  EXPECT_EQ(run.checks.size(), reference.checks.size()) << name;
  for (size_t i = 0; i < reference.checks.size() && i < run.checks.size(); ++i) {
    EXPECT_EQ(run.checks[i], reference.checks[i]) << name << ", check " << i;
  }
}

TEST(Interposition, EveryAllocationEntryPointBehavesAsWithoutTheAgent) {
  const MatrixRun plain = RunMatrix(Flavour::kNone, "");
  ASSERT_GT(plain.checks.size(), 100u);
  // The reference run itself: what glibc and libstdc++ do on Debian 12.
  EXPECT_THAT(plain.checks, Not(Contains(HasSubstr("BAD"))));
  EXPECT_THAT(plain.checks, Not(Contains(HasSubstr("CHANGED"))));
  for (const char* want : {
           "malloc(2^62): null errno=ENOMEM",
           "malloc(100): nonnull align=ok usable=ok errno=unchanged",
           "calloc(SIZE_MAX/2,3): null errno=ENOMEM",
           "calloc(1,4000) after dirty free: zeroed=ok",
           "realloc(NULL,50): nonnull errno=unchanged",
           "realloc(p,50->5000): nonnull contents=ok usable=ok",
           "realloc(p,2^62): null errno=ENOMEM old contents=ok",
           "realloc(p,0): null",
           "reallocarray(NULL,SIZE_MAX/2,4): null errno=ENOMEM",
           "posix_memalign(3,10): rc=EINVAL out=untouched errno=unchanged",
           "posix_memalign(0,10): rc=EINVAL out=untouched errno=unchanged",
           "posix_memalign(4096,100): rc=0 align=ok usable=ok errno=unchanged",
           "aligned_alloc(4096,100): nonnull align=ok usable=ok errno=unchanged",
           "memalign(65536,100000): nonnull align=ok usable=ok errno=unchanged",
           "valloc(10): nonnull align=ok usable=ok errno=unchanged",
           "pvalloc(10): nonnull align=ok usable=ok errno=unchanged",
           "malloc_usable_size(NULL): 0",
           "operator new(100,align 4096)+sized delete: nonnull align=ok usable=ok",
           "operator new(2^62): threw bad_alloc",
           "operator new(2^62,nothrow): returned null",
       }) {
    EXPECT_THAT(plain.checks, Contains(std::string(want)));
  }

  ExpectSameChecks(plain, RunMatrix(Flavour::kPreloaded, "1"), "preloaded, rate 1");
  ExpectSameChecks(plain, RunMatrix(Flavour::kPreloaded, ""), "preloaded, default rate");
  ExpectSameChecks(plain, RunMatrix(Flavour::kLinked, "1"), "linked, rate 1");
}

// At rate 1 nothing is scaled: each live block counts once at its size.
TEST(Interposition, RateOneHeapProfileShowsOperatorNewCallSites) {
  PA_IT_SKIP_WITHOUT_GO();
  for (Flavour flavour : {Flavour::kPreloaded, Flavour::kLinked}) {
    SCOPED_TRACE(FlavourName(flavour));
    RunMatrix(flavour, "1", [](const AgentProgram& program) {
      TempDir tmp;
      std::string error;
      auto heap = FetchRawProfile(tmp, program.port, "/debug/pprof/heap",
                                  "heap.pb.gz", &error);
      ASSERT_TRUE(heap.has_value()) << error;
      EXPECT_EQ(heap->period, 1);
      struct {
        const char* site;
        int64_t bytes;
        int64_t objects;
      } const sites[] = {
          {"it::NewPlainSite", 1 << 16, 1},
          {"it::NewNothrowSite", 1 << 16, 1},
          {"it::NewAlignedSite", 1 << 16, 1},
          // The std::string object and its 40000 characters + NUL.
          {"it::NewScalarSite", 32 + 40001, 2},
      };
      for (const auto& s : sites) {
        EXPECT_EQ(heap->SumFor("inuse_space", s.site), s.bytes) << s.site;
        EXPECT_EQ(heap->SumFor("inuse_objects", s.site), s.objects) << s.site;
      }
      const CommandResult top = GoPprof(
          tmp, {"-top", "-sample_index=inuse_space", tmp.File("heap.pb.gz")});
      ASSERT_TRUE(top.ok()) << top.err;
      for (const auto& s : sites) EXPECT_THAT(top.out, HasSubstr(s.site));
    });
  }
}

// At rate 1 every allocation is recorded, including those right after a
// request of 2^64-2^20 bytes (the countdown is unsigned: a huge request must
// not wrap it into a long gap).
TEST(Interposition, RateOneRecordsAllocationsAfterAFailedHugeRequest) {
  PA_IT_SKIP_WITHOUT_GO();
  TempDir tmp;
  std::string error;
  EnvChanges env;
  env.set["PPROF_AGENT_HEAP_RATE"] = "1";
  auto program = StartProgram("it_alloc", Flavour::kPreloaded, {"huge"}, env, true, &error);
  ASSERT_TRUE(program.has_value()) << error;
  EXPECT_THAT(program->process->out(), HasSubstr("huge request: null\n"));
  auto heap = FetchRawProfile(tmp, program->port, "/debug/pprof/heap", "heap.pb.gz", &error);
  ASSERT_TRUE(heap.has_value()) << error;
  EXPECT_EQ(heap->SumFor("inuse_objects", "it::SmallAfterHugeRequest"), 100);
  EXPECT_EQ(heap->SumFor("inuse_space", "it::SmallAfterHugeRequest"), 800);
  program->process->CloseStdin();
  EXPECT_TRUE(program->process->Wait(kExitTimeout).exited);
}

}  // namespace
}  // namespace pprof_agent::integration
