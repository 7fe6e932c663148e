// One-line logging for the http/ layer and the start-up code: "pprof-agent: "
// + message + "\n" to stderr in a single write(2), so lines from concurrent
// threads never interleave and nothing goes through stdio (the host may have
// redirected, buffered or closed std::cerr).
#ifndef PPROF_AGENT_HTTP_LOG_H_
#define PPROF_AGENT_HTTP_LOG_H_

#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

namespace pprof_agent::internal {

inline void LogLine(std::string_view message) {
  std::string line = "pprof-agent: ";
  line.append(message);
  line.push_back('\n');
  const int saved_errno = errno;  // callers may still want theirs
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // stderr closed or full: logging is best effort
    p += n;
    left -= static_cast<size_t>(n);
  }
  errno = saved_errno;
}

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_HTTP_LOG_H_
