// How long /debug/pprof/heap takes to build and serve, and how big it is,
// with 100k live samples over ~10k distinct stacks. Run with the agent
// recording every allocation:
//   PPROF_AGENT_HEAP_RATE=1 PPROF_AGENT_ADDR=127.0.0.1:0 \
//     LD_PRELOAD=build/libpprof_agent.so build/tools/bench/heap_profile_bench
// It fetches its own endpoint over loopback several times; the first fetch
// is cold (symbols not cached), the rest are warm. Prints one line per fetch
// and a summary line with the median warm time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::vector<void*> g_live;
// Distinct side effects keep GCC's identical-code folding (-fipa-icf) from
// merging BranchA and BranchB into one function.
volatile int g_a = 0;
volatile int g_b = 0;

// 2^14 = 16384 distinct call paths: each level calls one of two functions.
__attribute__((noinline)) void Level(int depth, unsigned path);

__attribute__((noinline)) void BranchA(int depth, unsigned path) {
  Level(depth - 1, path);
  g_a = g_a + 1;
}
__attribute__((noinline)) void BranchB(int depth, unsigned path) {
  Level(depth - 1, path);
  g_b = g_b + 2;
}

void Level(int depth, unsigned path) {
  if (depth == 0) {
    void* p = malloc(64);
    memset(p, 1, 64);
    g_live.push_back(p);
    return;
  }
  if ((path >> depth) & 1) {
    BranchA(depth, path);
  } else {
    BranchB(depth, path);
  }
}

int ServingPort() {
  // The agent announces its port on stderr; the bench is told it instead.
  const char* p = getenv("BENCH_PORT");
  return p ? atoi(p) : 0;
}

// Minimal HTTP/1.0 GET; returns the body size or -1.
long Fetch(int port, const char* path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  std::string req = std::string("GET ") + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  std::string resp;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, n);
  close(fd);
  const size_t body = resp.find("\r\n\r\n");
  if (resp.compare(0, 12, "HTTP/1.1 200") != 0 || body == std::string::npos) return -1;
  return static_cast<long>(resp.size() - body - 4);
}

}  // namespace

int main(int argc, char** argv) {
  constexpr int kLive = 100000;
  g_live.reserve(kLive + 16);
  for (int i = 0; g_live.size() < kLive; ++i) Level(14, static_cast<unsigned>(i) << 1);
  int port = ServingPort();
  if (port == 0) {
    fprintf(stderr, "set BENCH_PORT to the agent's port (PPROF_AGENT_ADDR=127.0.0.1:PORT)\n");
    return 2;
  }
  const int fetches = argc > 1 ? atoi(argv[1]) : 7;
  std::vector<double> warm;
  long size = 0;
  for (int i = 0; i < fetches; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    size = Fetch(port, "/debug/pprof/heap");
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - t0).count();
    if (size < 0) {
      fprintf(stderr, "fetch failed\n");
      return 1;
    }
    printf("fetch %d (%s): %.1f ms, %ld bytes\n", i, i == 0 ? "cold" : "warm", ms, size);
    if (i > 0) warm.push_back(ms);
  }
  if (const char* hold = getenv("BENCH_HOLD_SECONDS")) sleep(atoi(hold));
  std::sort(warm.begin(), warm.end());
  printf("heap_profile_bench: live=%zu warm_median_ms=%.1f bytes=%ld\n", g_live.size(),
         warm.empty() ? 0.0 : warm[warm.size() / 2], size);
  return 0;
}
