// A deliberately dumb HTTP/1.1 client over a raw TCP socket, for requests no
// well-behaved client library would send: bytes exactly as given, optionally
// in slow pieces, optionally abandoned half-way. Every wait is bounded.
#ifndef PPROF_AGENT_TESTS_SUITES_RELIABILITY_RAW_HTTP_H_
#define PPROF_AGENT_TESTS_SUITES_RELIABILITY_RAW_HTTP_H_

#include <chrono>
#include <string>

namespace pprof_agent::reliability {

struct RawResponse {
  int status = 0;             // 0: no status line was received
  bool closed = false;        // the server closed the connection
  bool timed_out = false;     // neither a full response nor a close in time
  std::string error;          // connect/send failures
  std::string head;           // status line and headers
  std::string body;
};

// Connects to 127.0.0.1:port, sends `request`, and reads until the server
// closes the connection, a complete response (Content-Length) arrived, or
// `timeout` passed.
RawResponse RawExchange(int port, const std::string& request,
                        std::chrono::milliseconds timeout);

// A connected socket to 127.0.0.1:port, or -1.
int ConnectTo(int port);
// Sends all of `data`; false on error.
bool SendAll(int fd, const std::string& data);
// Reads until close or `timeout`; true if the server closed (EOF or reset).
bool WaitForServerClose(int fd, std::chrono::milliseconds timeout,
                        std::string* received);

}  // namespace pprof_agent::reliability

#endif  // PPROF_AGENT_TESTS_SUITES_RELIABILITY_RAW_HTTP_H_
