// See raw_http.h.
#include "tests/suites/reliability/raw_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <strings.h>

namespace pprof_agent::reliability {

using Clock = std::chrono::steady_clock;

int ConnectTo(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

namespace {

// Reads what is available within `ms`; 0 on EOF/reset, -1 on timeout, else
// the number of bytes appended.
ssize_t ReadSome(int fd, int ms, std::string* out) {
  pollfd p = {fd, POLLIN, 0};
  const int r = poll(&p, 1, ms);
  if (r <= 0) return -1;
  char buf[65536];
  const ssize_t n = recv(fd, buf, sizeof(buf), 0);
  if (n <= 0) return 0;
  out->append(buf, static_cast<size_t>(n));
  return n;
}

// Whether `data` holds a complete response: headers and Content-Length
// bytes of body (a response without Content-Length is complete on close).
bool Complete(std::string data, RawResponse* r) {
  // Interim 1xx answers (100 Continue) come before the real one.
  while (data.compare(0, 10, "HTTP/1.1 1") == 0) {
    const size_t interim = data.find("\r\n\r\n");
    if (interim == std::string::npos) return false;
    data.erase(0, interim + 4);
  }
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  r->head = data.substr(0, end);
  const char* cl = nullptr;
  for (size_t pos = 0; pos < r->head.size();) {
    size_t eol = r->head.find("\r\n", pos);
    if (eol == std::string::npos) eol = r->head.size();
    if (strncasecmp(r->head.c_str() + pos, "Content-Length:", 15) == 0) {
      cl = r->head.c_str() + pos + 15;
    }
    pos = eol + 2;
  }
  if (cl == nullptr) return false;
  const size_t length = std::strtoul(cl, nullptr, 10);
  if (data.size() - end - 4 < length) return false;
  r->body = data.substr(end + 4, length);
  return true;
}

}  // namespace

RawResponse RawExchange(int port, const std::string& request,
                        std::chrono::milliseconds timeout) {
  RawResponse r;
  const int fd = ConnectTo(port);
  if (fd < 0) {
    r.error = std::string("connect: ") + std::strerror(errno);
    return r;
  }
  // A server that answers before reading everything may reset us while we
  // still send: that counts as a close, not an error.
  SendAll(fd, request);
  const auto deadline = Clock::now() + timeout;
  std::string data;
  bool complete = false;
  while (!complete) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    const ssize_t n = ReadSome(fd, static_cast<int>(left.count()), &data);
    if (n == 0) {
      r.closed = true;
      break;
    }
    if (n > 0) complete = Complete(data, &r);
  }
  close(fd);
  while (data.compare(0, 10, "HTTP/1.1 1") == 0 &&
         data.find("\r\n\r\n") != std::string::npos) {
    data.erase(0, data.find("\r\n\r\n") + 4);
  }
  if (!complete && data.find("\r\n\r\n") != std::string::npos) {
    const size_t end = data.find("\r\n\r\n");
    r.head = data.substr(0, end);
    r.body = data.substr(end + 4);
  }
  if (data.compare(0, 9, "HTTP/1.1 ") == 0 || data.compare(0, 9, "HTTP/1.0 ") == 0) {
    r.status = std::atoi(data.c_str() + 9);
  }
  return r;
}

bool WaitForServerClose(int fd, std::chrono::milliseconds timeout,
                        std::string* received) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    const ssize_t n = ReadSome(fd, static_cast<int>(left.count()), received);
    if (n == 0) return true;
  }
  return false;
}

}  // namespace pprof_agent::reliability
