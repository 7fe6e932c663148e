// Tells whether the client of the request being served has gone away, for
// handlers that run long (a CPU profile) and should stop early when nobody
// will read the answer, as Go's net/http/pprof does through the request's
// context. cpp-httplib 0.11 hands handlers no socket and no "connection
// closed" flag, so the probe finds the connection's socket by its addresses
// (the request carries both ends) among the process's descriptors, once, and
// then polls it.
#ifndef PPROF_AGENT_HTTP_CONNECTION_PROBE_H_
#define PPROF_AGENT_HTTP_CONNECTION_PROBE_H_

#include <functional>
#include <string>

namespace pprof_agent::internal {

// A callable that returns true once the peer has closed the TCP connection
// local_addr:local_port <-> remote_addr:remote_port (addresses as
// getnameinfo(NI_NUMERICHOST) prints them). The socket is looked up on the
// first call; if it cannot be found the probe always answers false. Call it
// only from the thread serving the request (which keeps the socket open).
std::function<bool()> ClientGoneProbe(std::string local_addr, int local_port,
                                      std::string remote_addr, int remote_port);

// One end of connected socket `fd` (`peer`: the remote one) as
// getnameinfo(NI_NUMERICHOST) prints it; false if it cannot be read.
bool SocketEndpoint(int fd, bool peer, std::string* host, int* port);

// Whether the peer of connected socket `fd` has closed or reset it: poll()
// reports POLLRDHUP, POLLHUP or POLLERR. Does not consume any data.
bool SocketPeerClosed(int fd);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_HTTP_CONNECTION_PROBE_H_
