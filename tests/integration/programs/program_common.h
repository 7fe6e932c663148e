// What every integration test program shares: how it gets the agent (built
// twice, with PA_IT_LINKED=1 linked against libpprof_agent.so and calling
// pprof_agent::Start(), and plain, for LD_PRELOAD or no agent at all), how it
// says it is ready, and how it waits for the test to be done with it.
#ifndef PPROF_AGENT_TESTS_INTEGRATION_PROGRAMS_PROGRAM_COMMON_H_
#define PPROF_AGENT_TESTS_INTEGRATION_PROGRAMS_PROGRAM_COMMON_H_

#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#if PA_IT_LINKED
#include <pprof_agent/pprof_agent.h>
#endif

// Keeps a function out of line, uncloned and unmerged, so that it shows up in
// profiles under its own name: noipa also stops GCC's identical-code folding
// from merging functions with the same body.
#if defined(__clang__)
#define IT_SITE __attribute__((noinline))
#else
#define IT_SITE __attribute__((noinline, noipa))
#endif

namespace it {

// Starts the agent from main() in the linked flavour (from the environment:
// PPROF_AGENT_ADDR and friends) and reports the outcome on stdout, so that
// the agent's stderr holds only its own log lines. The plain flavour prints
// nothing here.
inline void StartAgentIfLinked() {
#if PA_IT_LINKED
  const pprof_agent::Status status = pprof_agent::Start();
  if (status.ok()) {
    std::printf("START ok port=%d\n", pprof_agent::Port());
  } else {
    std::printf("START error: %s\n", status.message().c_str());
  }
  std::fflush(stdout);
#endif
}

inline void AnnounceReady() {
  std::printf("READY\n");
  std::fflush(stdout);
}

// Blocks until stdin reaches end of file (the test closes its end) or
// `timeout_seconds` pass; a test that forgot us must not leave us running.
// Returns false on timeout.
inline bool WaitForStdinClose(int timeout_seconds = 60) {
  char buf[256];
  for (int waited_ms = 0; waited_ms < timeout_seconds * 1000;) {
    pollfd fd = {STDIN_FILENO, POLLIN, 0};
    const int r = poll(&fd, 1, 100);
    if (r < 0) continue;
    if (r == 0) {
      waited_ms += 100;
      continue;
    }
    const ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n <= 0) return true;
  }
  std::fprintf(stderr, "test program: timed out waiting for stdin to close\n");
  return false;
}

}  // namespace it

#endif  // PPROF_AGENT_TESTS_INTEGRATION_PROGRAMS_PROGRAM_COMMON_H_
