// sym_program_{plain,linked}: an -O2 -g program with allocation sites at
// known source lines (each marked "MARK:<name>", found by the tests in this
// file), one of them inside an always-inline function, and one in a library
// it dlopens. Prints READY and stays alive until stdin closes.
//
//   sym_program_<flavour> <path of libpa_sym_dl.so>
//
// On SIGUSR1 it dlcloses the library, checks that the loader really unmapped
// it, and prints "DLCLOSED" (or "DLCLOSE FAILED: <why>").
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "tests/integration/programs/program_common.h"

namespace sym {

constexpr int kBlocks = 64;
constexpr size_t kBlockBytes = 64 * 1024;  // 4 MiB live from RetainBlocks
char* volatile g_retained[kBlocks];
char* volatile g_inlined[kBlocks];

IT_SITE void RetainBlocks() {
  for (int i = 0; i < kBlocks; ++i) {
    char* p = static_cast<char*>(std::malloc(kBlockBytes));  // MARK:retain
    p[0] = static_cast<char>(i);
    g_retained[i] = p;
  }
}

// Inlined into CallsInlined: its malloc call is a location with two lines.
__attribute__((always_inline)) inline char* InlinedAllocate(size_t n) {
  char* p = static_cast<char*>(std::malloc(n));  // MARK:inlined
  p[0] = 1;
  return p;
}

IT_SITE void CallsInlined() {
  for (int i = 0; i < kBlocks; ++i) {
    g_inlined[i] = InlinedAllocate(32 * 1024);  // MARK:caller
  }
}

volatile sig_atomic_t g_unload_requested = 0;

void OnUsr1(int) { g_unload_requested = 1; }

void Unload(void* handle, const char* path) {
  if (dlclose(handle) != 0) {
    std::printf("DLCLOSE FAILED: %s\n", dlerror());
  } else if (dlopen(path, RTLD_NOW | RTLD_NOLOAD) != nullptr) {
    std::printf("DLCLOSE FAILED: still loaded\n");
  } else {
    std::printf("DLCLOSED\n");
  }
  std::fflush(stdout);
}

}  // namespace sym

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <libpa_sym_dl.so>\n", argv[0]);
    return 2;
  }
  it::StartAgentIfLinked();
  sym::RetainBlocks();
  sym::CallsInlined();

  void* handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  auto allocate = reinterpret_cast<void (*)(int)>(dlsym(handle, "pa_sym_dl_allocate"));
  if (allocate == nullptr) {
    std::fprintf(stderr, "dlsym: %s\n", dlerror());
    return 1;
  }
  allocate(32);

  struct sigaction sa = {};
  sa.sa_handler = sym::OnUsr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  it::AnnounceReady();

  // Until stdin closes (or 60 s, so that a forgotten child ends).
  char buf[256];
  for (int waited_ms = 0; waited_ms < 60000;) {
    if (sym::g_unload_requested && handle != nullptr) {
      sym::Unload(handle, argv[1]);
      handle = nullptr;
    }
    pollfd fd = {STDIN_FILENO, POLLIN, 0};
    const int r = poll(&fd, 1, 50);
    if (r == 0) waited_ms += 50;
    if (r <= 0) continue;
    if (read(STDIN_FILENO, buf, sizeof(buf)) <= 0) return 0;
  }
  return 0;
}
