// fork+exec child processes for the integration tests; see subprocess.h.
#include "tests/integration/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>

extern char** environ;

namespace pprof_agent::integration {
namespace {

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

// Appends `option` to the sanitizer options variable `name` in `env`
// (keeping what is there), unless that option's key is set already and not
// `force` (the sanitizers take the last of repeated options).
[[maybe_unused]] void AddSanitizerOption(std::vector<std::string>* env,
                                         const std::string& name,
                                         const std::string& option,
                                         bool force = false) {
  const std::string prefix = name + "=";
  const std::string key = option.substr(0, option.find('=') + 1);
  auto it = std::find_if(env->begin(), env->end(), [&](const std::string& e) {
    return e.rfind(prefix, 0) == 0;
  });
  if (it == env->end()) {
    env->push_back(prefix + option);
  } else if (force || it->find(key) == std::string::npos) {
    *it += (it->size() > prefix.size() ? ":" : "") + option;
  }
}

// The merged environment as "NAME=value" strings.
std::vector<std::string> BuildEnv(const EnvChanges& changes) {
  std::vector<std::string> env;
  std::set<std::string> dropped(changes.unset.begin(), changes.unset.end());
  for (const auto& [name, value] : changes.set) dropped.insert(name);
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) {
    std::string entry = *p;
    const std::string name = entry.substr(0, entry.find('='));
    if (dropped.count(name) == 0) env.push_back(std::move(entry));
  }
  for (const auto& [name, value] : changes.set) env.push_back(name + "=" + value);
#if defined(PA_SANITIZE_ADDRESS)
  // In the ASan build the agent is preloaded ahead of libasan (so that its
  // malloc comes first: integration_util.h), which ASan refuses unless told
  // this order is meant. Added to the options already there, in every
  // child: a program that execs another passes the environment on.
  AddSanitizerOption(&env, "ASAN_OPTIONS", "verify_asan_link_order=0");
  // glibc answers an impossible size with NULL and ENOMEM, and the tests
  // check that the agent does too; ASan's default is to abort.
  AddSanitizerOption(&env, "ASAN_OPTIONS", "allocator_may_return_null=1");
  // No leak check in the children: the programs they run leave blocks at
  // exit by design (forked children that allocate and exit, python3, the
  // agent's server, which is never destroyed: http/agent.cc). The unit
  // tests, which drive the recorder directly, keep it.
  AddSanitizerOption(&env, "ASAN_OPTIONS", "detect_leaks=0", /*force=*/true);
#endif
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

bool HasCompleteLine(const std::string& text, const std::string& line) {
  size_t start = 0;
  while (start < text.size()) {
    const size_t nl = text.find('\n', start);
    if (nl == std::string::npos) return false;
    if (text.compare(start, nl - start, line) == 0 && nl - start == line.size()) {
      return true;
    }
    start = nl + 1;
  }
  return false;
}

}  // namespace

std::string ExitStatus::Describe() const {
  if (timed_out) return "timed out (killed)";
  if (exited) return "exit code " + std::to_string(code);
  if (signal != 0) return std::string("killed by signal ") + strsignal(signal);
  return "unknown";
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::unique_ptr<Subprocess> Subprocess::Start(
    const std::vector<std::string>& argv, const EnvChanges& env,
    std::string* error) {
  std::vector<std::string> args = argv;
  std::vector<std::string> envs = BuildEnv(env);
  std::vector<char*> c_args = CStrings(args);
  std::vector<char*> c_env = CStrings(envs);

  int in_pipe[2], out_pipe[2], err_pipe[2], exec_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + strerror(errno);
    return nullptr;
  }
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      pipe2(exec_pipe, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + strerror(errno);
    return nullptr;  // a few fds leak on this path; the test fails anyway
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + strerror(errno);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1],
                   err_pipe[0], err_pipe[1], exec_pipe[0], exec_pipe[1]}) {
      ::close(fd);
    }
    return nullptr;
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the test died before prctl
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    // Default dispositions: the test process may ignore SIGPIPE.
    signal(SIGPIPE, SIG_DFL);
    execve(c_args[0], c_args.data(), c_env.data());
    const int e = errno;
    (void)!write(exec_pipe[1], &e, sizeof(e));
    _exit(127);
  }
  auto child = std::unique_ptr<Subprocess>(new Subprocess);
  child->pid_ = pid;
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  child->stdin_fd_ = in_pipe[1];
  child->stdout_fd_ = out_pipe[0];
  child->stderr_fd_ = err_pipe[0];
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == sizeof(exec_errno)) {
    *error = "exec " + argv[0] + ": " + strerror(exec_errno);
    return nullptr;  // the destructor reaps the child
  }
  return child;
}

Subprocess::~Subprocess() {
  KillAndReap();
  CloseFd(&stdin_fd_);
  CloseFd(&stdout_fd_);
  CloseFd(&stderr_fd_);
}

void Subprocess::KillAndReap() {
  if (pid_ <= 0 || status_.has_value()) return;
  ::kill(pid_, SIGKILL);
  int wstatus = 0;
  while (waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  ExitStatus s;
  s.timed_out = true;
  s.exited = WIFEXITED(wstatus);
  if (s.exited) s.code = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) s.signal = WTERMSIG(wstatus);
  status_ = s;
}

void Subprocess::ReadAvailable(int timeout_ms) {
  pollfd fds[2];
  int nfds = 0;
  if (stdout_fd_ >= 0) fds[nfds++] = {stdout_fd_, POLLIN, 0};
  if (stderr_fd_ >= 0) fds[nfds++] = {stderr_fd_, POLLIN, 0};
  if (nfds == 0) {
    std::this_thread::sleep_for(Millis(std::min(timeout_ms, 10)));
    return;
  }
  const int r = poll(fds, nfds, timeout_ms);
  if (r <= 0) return;
  for (int i = 0; i < nfds; ++i) {
    if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    const bool is_out = fds[i].fd == stdout_fd_;
    char buf[8192];
    const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
    if (n > 0) {
      (is_out ? out_ : err_).append(buf, static_cast<size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      CloseFd(is_out ? &stdout_fd_ : &stderr_fd_);
    }
  }
}

bool Subprocess::PumpUntil(const std::function<bool()>& done, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left.count() <= 0) return done();
    if (stdout_fd_ < 0 && stderr_fd_ < 0) return done();  // nothing more will come
    ReadAvailable(static_cast<int>(std::min<int64_t>(left.count(), 100)));
  }
  return true;
}

bool Subprocess::WaitForStdoutLine(const std::string& line, Millis timeout) {
  return PumpUntil([&] { return HasCompleteLine(out_, line); }, timeout);
}

std::optional<std::string> Subprocess::WaitForStderrLine(
    const std::string& needle, Millis timeout) {
  std::optional<std::string> found;
  PumpUntil(
      [&] {
        for (const std::string& l : SplitLines(err_)) {
          // Only complete lines: the last one may still be growing.
          if (l.find(needle) != std::string::npos &&
              err_.find(l + "\n") != std::string::npos) {
            found = l;
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

void Subprocess::CloseStdin() { CloseFd(&stdin_fd_); }

ExitStatus Subprocess::Wait(Millis timeout) {
  if (status_.has_value()) return *status_;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int wstatus = 0;
    const pid_t r = waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_) {
      ExitStatus s;
      s.exited = WIFEXITED(wstatus);
      if (s.exited) s.code = WEXITSTATUS(wstatus);
      if (WIFSIGNALED(wstatus)) s.signal = WTERMSIG(wstatus);
      status_ = s;
      // Drain what is left in the pipes (bounded: a grandchild could hold
      // them open).
      PumpUntil([] { return false; }, Millis(500));
      return *status_;
    }
    if (Clock::now() >= deadline) {
      KillAndReap();
      PumpUntil([] { return false; }, Millis(200));
      return *status_;
    }
    ReadAvailable(20);
  }
}

std::vector<std::string> Subprocess::OutLines() const { return SplitLines(out_); }
std::vector<std::string> Subprocess::ErrLines() const { return SplitLines(err_); }

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const EnvChanges& env, Millis timeout) {
  CommandResult result;
  std::string error;
  auto child = Subprocess::Start(argv, env, &error);
  if (child == nullptr) {
    result.err = error;
    return result;
  }
  child->CloseStdin();
  result.status = child->Wait(timeout);
  result.out = child->out();
  result.err = child->err();
  return result;
}

}  // namespace pprof_agent::integration
