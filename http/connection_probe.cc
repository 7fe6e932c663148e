// Finding a request's socket by its addresses, and polling it; see
// connection_probe.h.
#include "http/connection_probe.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <utility>

namespace pprof_agent::internal {
namespace {

// The descriptor of the connected socket with these two ends, or -1.
int FindSocket(const std::string& local_addr, int local_port,
               const std::string& remote_addr, int remote_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    std::string host;
    int port = 0;
    if (!SocketEndpoint(static_cast<int>(fd), false, &host, &port) ||
        port != local_port || host != local_addr) {
      continue;
    }
    if (!SocketEndpoint(static_cast<int>(fd), true, &host, &port) ||
        port != remote_port || host != remote_addr) {
      continue;
    }
    found = static_cast<int>(fd);
    break;
  }
  closedir(dir);
  return found;
}

}  // namespace

bool SocketEndpoint(int fd, bool peer, std::string* host, int* port) {
  sockaddr_storage addr;
  socklen_t len = sizeof(addr);
  const int rc =
      peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
           : getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return false;
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return false;
  char h[NI_MAXHOST];
  char s[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, h, sizeof(h), s,
                  sizeof(s), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  *host = h;
  *port = atoi(s);
  return true;
}

bool SocketPeerClosed(int fd) {
  pollfd p = {fd, POLLRDHUP, 0};
  if (poll(&p, 1, 0) != 1) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

std::function<bool()> ClientGoneProbe(std::string local_addr, int local_port,
                                      std::string remote_addr,
                                      int remote_port) {
  if (local_port <= 0 || remote_port <= 0) return {};
  struct State {
    std::string local_addr, remote_addr;
    int local_port, remote_port;
    bool looked_up = false;
    int fd = -1;
  };
  auto state = std::make_shared<State>();
  state->local_addr = std::move(local_addr);
  state->remote_addr = std::move(remote_addr);
  state->local_port = local_port;
  state->remote_port = remote_port;
  return [state]() {
    if (!state->looked_up) {
      state->looked_up = true;
      state->fd = FindSocket(state->local_addr, state->local_port,
                             state->remote_addr, state->remote_port);
    }
    return state->fd >= 0 && SocketPeerClosed(state->fd);
  };
}

}  // namespace pprof_agent::internal
