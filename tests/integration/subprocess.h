// A child process for integration tests: fork+exec with a chosen
// environment, pipes on stdin/stdout/stderr, bounded waits for output, and a
// destructor that kills and reaps the child on every path (a failed ASSERT
// included), so a test never leaks a process or blocks forever.
#ifndef PPROF_AGENT_TESTS_INTEGRATION_SUBPROCESS_H_
#define PPROF_AGENT_TESTS_INTEGRATION_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pprof_agent::integration {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// The environment of a child: the test's own environment with these changes.
struct EnvChanges {
  std::map<std::string, std::string> set;
  std::vector<std::string> unset;
};

// How a child ended.
struct ExitStatus {
  bool exited = false;     // normal exit (then `code` is valid)
  int code = -1;           // exit code
  int signal = 0;          // terminating signal, if killed
  bool timed_out = false;  // we had to kill it
  std::string Describe() const;
};

class Subprocess {
 public:
  // Starts argv[0] (a path, not searched in PATH) with `env`. Returns null
  // and sets *error if the process cannot be started (exec failure included).
  // The child gets PR_SET_PDEATHSIG=SIGKILL, so it dies with the test.
  static std::unique_ptr<Subprocess> Start(const std::vector<std::string>& argv,
                                           const EnvChanges& env,
                                           std::string* error);

  ~Subprocess();  // SIGKILL if still running, then reap
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // Reads stdout and stderr (both, so neither pipe fills) until `done`
  // returns true for the output so far, both pipes close, or `timeout`
  // passes. Returns `done`'s final answer.
  bool PumpUntil(const std::function<bool()>& done, Millis timeout);

  // Waits for a complete stdout line equal to `line`.
  bool WaitForStdoutLine(const std::string& line, Millis timeout);
  // Waits for a complete stderr line that contains `needle`; returns it.
  std::optional<std::string> WaitForStderrLine(const std::string& needle,
                                               Millis timeout);

  // Closes the child's stdin: the test programs take it as "exit now".
  void CloseStdin();

  // Reads output until the child exits or `timeout` passes; then kills it
  // (timed_out = true). Idempotent: later calls return the same status.
  ExitStatus Wait(Millis timeout);

  // Output read so far.
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  std::vector<std::string> OutLines() const;
  std::vector<std::string> ErrLines() const;

 private:
  Subprocess() = default;
  void ReadAvailable(int timeout_ms);
  void KillAndReap();

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::string out_;
  std::string err_;
  std::optional<ExitStatus> status_;
};

// Runs a command to completion with a bounded time, capturing its output.
struct CommandResult {
  ExitStatus status;
  std::string out;
  std::string err;
  bool ok() const { return status.exited && status.code == 0; }
};
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const EnvChanges& env, Millis timeout);

std::vector<std::string> SplitLines(const std::string& text);

}  // namespace pprof_agent::integration

#endif  // PPROF_AGENT_TESTS_INTEGRATION_SUBPROCESS_H_
