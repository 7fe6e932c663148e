// it_matrix_{plain,linked}: calls every malloc-family function and every
// form of operator new/delete, and prints one canonical line per check: the
// class of the result (null/nonnull, a return code), errno after a failure,
// whether alignment, usable size, zeroing and realloc's copy are right, and
// whether errno survived a successful call. The test runs it without the
// agent, preloaded at rate 1 (every allocation takes the sampled path) and
// at the default rate, and linked; the outputs must be identical.
//
// Then it keeps blocks from each operator new form live in named functions
// (NewPlainSite, ...), prints READY, and waits until stdin closes, so that the
// test can find those call sites in the heap profile.
//
// The checks use sizes no machine can satisfy (2^62 bytes and more) for the
// failure cases, so the result does not depend on the machine's memory.
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/programs/program_common.h"

namespace it {
namespace {

void* volatile g_sink;

// Huge sizes: beyond any machine, and (unlike SIZE_MAX) they do not wrap
// the agent's sample countdown arithmetic into a small number. SIZE_MAX and
// friends are checked as well, separately.
constexpr size_t kHuge = size_t{1} << 62;

std::string ErrnoName(int e) {
  switch (e) {
    case 0: return "0";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case 12345: return "unchanged";
    default: return "errno" + std::to_string(e);
  }
}

bool Aligned(const void* p, size_t align) {
  return (reinterpret_cast<uintptr_t>(p) % align) == 0;
}

// "name: null errno=ENOMEM" or "name: nonnull align=ok usable=ok errno=unchanged"
void ReportPointer(const char* name, void* p, int err, size_t align,
                   size_t requested) {
  if (p == nullptr) {
    std::printf("%s: null errno=%s\n", name, ErrnoName(err).c_str());
    return;
  }
  std::printf("%s: nonnull align=%s usable=%s errno=%s\n", name,
              Aligned(p, align) ? "ok" : "BAD",
              malloc_usable_size(p) >= requested ? "ok" : "BAD",
              ErrnoName(err).c_str());
}

// Calls `alloc` with errno set to a sentinel, reports, frees the result.
template <typename Alloc>
void CheckAlloc(const char* name, size_t align, size_t requested, Alloc alloc) {
  errno = 12345;
  void* p = alloc();
  const int err = errno;
  g_sink = p;
  ReportPointer(name, p, err, align, requested);
  if (p != nullptr) {
    memset(p, 0x5a, requested);
    free(p);
  }
}

void Fill(void* p, size_t n, unsigned char seed) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(seed + i * 7);
}

bool Holds(const void* p, size_t n, unsigned char seed) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != static_cast<unsigned char>(seed + i * 7)) return false;
  }
  return true;
}

bool AllZero(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

void CheckMalloc() {
  CheckAlloc("malloc(0)", 16, 0, [] { return malloc(0); });
  CheckAlloc("malloc(1)", 16, 1, [] { return malloc(1); });
  CheckAlloc("malloc(100)", 16, 100, [] { return malloc(100); });
  CheckAlloc("malloc(100000)", 16, 100000, [] { return malloc(100000); });
  CheckAlloc("malloc(1<<20)", 16, 1 << 20, [] { return malloc(1 << 20); });
  CheckAlloc("malloc(2^62)", 16, 0, [] { return malloc(kHuge); });
  CheckAlloc("malloc(SIZE_MAX)", 16, 0, [] { return malloc(SIZE_MAX); });
  CheckAlloc("malloc(SIZE_MAX-15)", 16, 0, [] { return malloc(SIZE_MAX - 15); });
  CheckAlloc("malloc(PTRDIFF_MAX)", 16, 0, [] { return malloc(PTRDIFF_MAX); });
  errno = 12345;
  free(nullptr);
  std::printf("free(NULL): errno=%s\n", ErrnoName(errno).c_str());
}

void CheckCalloc() {
  CheckAlloc("calloc(10,10)", 16, 100, [] { return calloc(10, 10); });
  CheckAlloc("calloc(0,0)", 16, 0, [] { return calloc(0, 0); });
  CheckAlloc("calloc(SIZE_MAX/2,3)", 16, 0, [] { return calloc(SIZE_MAX / 2, 3); });
  CheckAlloc("calloc(2^31,2^31)", 16, 0,
             [] { return calloc(size_t{1} << 31, size_t{1} << 31); });
  CheckAlloc("calloc(1,2^62)", 16, 0, [] { return calloc(1, kHuge); });
  // calloc must zero memory that malloc just handed out dirty.
  for (size_t size : {size_t{64}, size_t{4000}, size_t{200000}}) {
    bool zero = true;
    for (int round = 0; round < 64; ++round) {
      void* dirty = malloc(size);
      memset(dirty, 0xff, size);
      free(dirty);
      void* p = calloc(1, size);
      zero = zero && p != nullptr && AllZero(p, size);
      g_sink = p;
      free(p);
    }
    std::printf("calloc(1,%zu) after dirty free: zeroed=%s\n", size,
                zero ? "ok" : "BAD");
  }
}

void CheckRealloc() {
  errno = 12345;
  void* p = realloc(nullptr, 50);
  std::printf("realloc(NULL,50): %s errno=%s\n", p ? "nonnull" : "null",
              ErrnoName(errno).c_str());
  Fill(p, 50, 1);
  void* q = realloc(p, 5000);
  std::printf("realloc(p,50->5000): %s contents=%s usable=%s\n",
              q ? "nonnull" : "null", q && Holds(q, 50, 1) ? "ok" : "BAD",
              q && malloc_usable_size(q) >= 5000 ? "ok" : "BAD");
  Fill(q, 5000, 2);
  void* r = realloc(q, 300000);
  std::printf("realloc(p,5000->300000): %s contents=%s\n", r ? "nonnull" : "null",
              r && Holds(r, 5000, 2) ? "ok" : "BAD");
  Fill(r, 300000, 3);
  void* s = realloc(r, 10);
  std::printf("realloc(p,300000->10): %s contents=%s\n", s ? "nonnull" : "null",
              s && Holds(s, 10, 3) ? "ok" : "BAD");
  errno = 12345;
  void* t = realloc(s, kHuge);
  std::printf("realloc(p,2^62): %s errno=%s old contents=%s\n",
              t ? "nonnull" : "null", ErrnoName(errno).c_str(),
              Holds(s, 10, 3) ? "ok" : "BAD");
  errno = 12345;
  void* u = realloc(s, SIZE_MAX);
  std::printf("realloc(p,SIZE_MAX): %s errno=%s old contents=%s\n",
              u ? "nonnull" : "null", ErrnoName(errno).c_str(),
              Holds(s, 10, 3) ? "ok" : "BAD");
  // glibc: realloc(p, 0) frees p and returns NULL.
  void* z = realloc(s, 0);
  std::printf("realloc(p,0): %s\n", z ? "nonnull" : "null");
  if (z != nullptr) free(z);
  // Many small grow steps, as a string builder does.
  bool ok = true;
  void* g = nullptr;
  for (size_t n = 1; n <= 4096; n = n * 3 / 2 + 1) {
    void* h = realloc(g, n);
    if (h == nullptr) {
      ok = false;
      break;
    }
    if (g != nullptr) ok = ok && Holds(h, n * 2 / 3, 9);
    Fill(h, n, 9);
    g = h;
  }
  free(g);
  std::printf("realloc growth chain: contents=%s\n", ok ? "ok" : "BAD");
  // realloc of aligned blocks (a sampled one carries a bigger header).
  for (size_t align : {size_t{64}, size_t{4096}}) {
    for (size_t to : {size_t{10}, size_t{10000}, size_t{300000}}) {
      void* a = aligned_alloc(align, 3000);
      Fill(a, 3000, 5);
      void* b = realloc(a, to);
      const size_t kept = to < 3000 ? to : 3000;
      std::printf("realloc(aligned_alloc(%zu,3000),%zu): %s contents=%s usable=%s\n",
                  align, to, b ? "nonnull" : "null",
                  b && Holds(b, kept, 5) ? "ok" : "BAD",
                  b && malloc_usable_size(b) >= to ? "ok" : "BAD");
      free(b);
    }
  }
}

void CheckReallocarray() {
  errno = 12345;
  void* p = reallocarray(nullptr, SIZE_MAX / 2, 4);
  std::printf("reallocarray(NULL,SIZE_MAX/2,4): %s errno=%s\n",
              p ? "nonnull" : "null", ErrnoName(errno).c_str());
  void* q = reallocarray(nullptr, 10, 10);
  Fill(q, 100, 4);
  errno = 12345;
  void* r = reallocarray(q, SIZE_MAX / 8, 16);
  std::printf("reallocarray(p,SIZE_MAX/8,16): %s errno=%s old contents=%s\n",
              r ? "nonnull" : "null", ErrnoName(errno).c_str(),
              Holds(q, 100, 4) ? "ok" : "BAD");
  void* s = reallocarray(q, 100, 10);
  std::printf("reallocarray(p,100,10): %s contents=%s\n", s ? "nonnull" : "null",
              s && Holds(s, 100, 4) ? "ok" : "BAD");
  errno = 12345;
  void* t = reallocarray(s, 0, 10);
  std::printf("reallocarray(p,0,10): %s errno=%s\n", t ? "nonnull" : "null",
              ErrnoName(errno).c_str());
  if (t != nullptr) free(t);
}

void CheckAligned() {
  for (size_t align : {size_t{16}, size_t{64}, size_t{4096}, size_t{65536}}) {
    for (size_t size : {size_t{1}, size_t{100}, size_t{100000}}) {
      const std::string suffix = "(" + std::to_string(align) + "," +
                                 std::to_string(size) + ")";
      CheckAlloc(("memalign" + suffix).c_str(), align, size,
                 [&] { return memalign(align, size); });
      CheckAlloc(("aligned_alloc" + suffix).c_str(), align, size,
                 [&] { return aligned_alloc(align, size); });
      errno = 12345;
      void* p = reinterpret_cast<void*>(0x1);
      const int rc = posix_memalign(&p, align, size);
      std::printf("posix_memalign%s: rc=%s align=%s usable=%s errno=%s\n",
                  suffix.c_str(), ErrnoName(rc).c_str(),
                  rc == 0 && Aligned(p, align) ? "ok" : "BAD",
                  rc == 0 && malloc_usable_size(p) >= size ? "ok" : "BAD",
                  ErrnoName(errno).c_str());
      if (rc == 0) {
        memset(p, 0x5a, size);
        free(p);
      }
    }
  }
  // glibc rounds a non-power-of-two alignment up to a power of two.
  CheckAlloc("memalign(24,100)", 32, 100, [] { return memalign(24, 100); });
  CheckAlloc("memalign(1,100)", 16, 100, [] { return memalign(1, 100); });
  // glibc 2.36's aligned_alloc is memalign: a non-power-of-two is rounded up.
  CheckAlloc("aligned_alloc(24,100)", 32, 100, [] { return aligned_alloc(24, 100); });
  CheckAlloc("memalign(64,2^62)", 64, 0, [] { return memalign(64, kHuge); });
  CheckAlloc("memalign(2^63+1,10)", 1, 0,
             [] { return memalign((size_t{1} << 63) + 1, 10); });
  CheckAlloc("aligned_alloc(64,2^62)", 64, 0, [] { return aligned_alloc(64, kHuge); });
  struct {
    const char* name;
    size_t align;
    size_t size;
  } const bad[] = {
      {"posix_memalign(3,10)", 3, 10},       {"posix_memalign(0,10)", 0, 10},
      {"posix_memalign(4,10)", 4, 10},       {"posix_memalign(24,10)", 24, 10},
      {"posix_memalign(64,2^62)", 64, kHuge}, {"posix_memalign(64,SIZE_MAX)", 64, SIZE_MAX},
  };
  for (const auto& b : bad) {
    void* p = reinterpret_cast<void*>(0x1);
    errno = 12345;
    const int rc = posix_memalign(&p, b.align, b.size);
    std::printf("%s: rc=%s out=%s errno=%s\n", b.name, ErrnoName(rc).c_str(),
                p == reinterpret_cast<void*>(0x1) ? "untouched" : "CHANGED",
                ErrnoName(errno).c_str());
    if (rc == 0) free(p);
  }
  CheckAlloc("valloc(10)", 4096, 10, [] { return valloc(10); });
  CheckAlloc("valloc(10000)", 4096, 10000, [] { return valloc(10000); });
  CheckAlloc("valloc(2^62)", 4096, 0, [] { return valloc(kHuge); });
  CheckAlloc("pvalloc(10)", 4096, 4096, [] { return pvalloc(10); });
  CheckAlloc("pvalloc(0)", 4096, 0, [] { return pvalloc(0); });
  CheckAlloc("pvalloc(5000)", 4096, 8192, [] { return pvalloc(5000); });
  CheckAlloc("pvalloc(2^62)", 4096, 0, [] { return pvalloc(kHuge); });
  std::printf("malloc_usable_size(NULL): %zu\n", malloc_usable_size(nullptr));
}

// operator new and delete, every form. Each `new` result is written to so
// that the compiler cannot elide the pair.
struct alignas(64) Aligned64 {
  char bytes[64];
};
struct alignas(4096) Aligned4096 {
  char bytes[4096];
};

void ReportNew(const char* name, void* p, size_t align, size_t size) {
  g_sink = p;
  if (p == nullptr) {
    std::printf("%s: null\n", name);
    return;
  }
  memset(p, 0x5a, size);
  std::printf("%s: nonnull align=%s usable=%s\n", name,
              Aligned(p, align) ? "ok" : "BAD",
              malloc_usable_size(p) >= size ? "ok" : "BAD");
}

template <typename F>
void ExpectBadAlloc(const char* name, F f) {
  try {
    void* p = f();
    g_sink = p;
    std::printf("%s: returned %s\n", name, p ? "nonnull" : "null");
  } catch (const std::bad_array_new_length&) {
    std::printf("%s: threw bad_array_new_length\n", name);
  } catch (const std::bad_alloc&) {
    std::printf("%s: threw bad_alloc\n", name);
  }
}

void CheckOperatorNew() {
  {
    void* p = ::operator new(100);
    ReportNew("operator new(100)", p, 16, 100);
    ::operator delete(p);
  }
  {
    void* p = ::operator new(100);
    ReportNew("operator new(100)+sized delete", p, 16, 100);
    ::operator delete(p, 100);
  }
  {
    void* p = ::operator new[](1000);
    ReportNew("operator new[](1000)", p, 16, 1000);
    ::operator delete[](p);
  }
  {
    void* p = ::operator new[](1000);
    ReportNew("operator new[](1000)+sized delete[]", p, 16, 1000);
    ::operator delete[](p, 1000);
  }
  {
    void* p = ::operator new(100, std::nothrow);
    ReportNew("operator new(100,nothrow)", p, 16, 100);
    ::operator delete(p, std::nothrow);
  }
  {
    void* p = ::operator new[](100, std::nothrow);
    ReportNew("operator new[](100,nothrow)", p, 16, 100);
    ::operator delete[](p, std::nothrow);
  }
  {
    void* p = ::operator new(0);
    ReportNew("operator new(0)", p, 16, 0);
    ::operator delete(p);
  }
  for (size_t align : {size_t{64}, size_t{4096}}) {
    const std::string a = std::to_string(align);
    const auto al = std::align_val_t(align);
    void* p = ::operator new(100, al);
    ReportNew(("operator new(100,align " + a + ")").c_str(), p, align, 100);
    ::operator delete(p, al);
    p = ::operator new(100, al);
    ReportNew(("operator new(100,align " + a + ")+sized delete").c_str(), p,
              align, 100);
    ::operator delete(p, 100, al);
    p = ::operator new[](3000, al);
    ReportNew(("operator new[](3000,align " + a + ")").c_str(), p, align, 3000);
    ::operator delete[](p, al);
    p = ::operator new[](3000, al);
    ReportNew(("operator new[](3000,align " + a + ")+sized delete[]").c_str(), p,
              align, 3000);
    ::operator delete[](p, 3000, al);
    p = ::operator new(100, al, std::nothrow);
    ReportNew(("operator new(100,align " + a + ",nothrow)").c_str(), p, align, 100);
    ::operator delete(p, al, std::nothrow);
    p = ::operator new[](100, al, std::nothrow);
    ReportNew(("operator new[](100,align " + a + ",nothrow)").c_str(), p, align,
              100);
    ::operator delete[](p, al, std::nothrow);
  }
  {
    auto* p = new Aligned64[5];
    ReportNew("new Aligned64[5]", p, 64, sizeof(Aligned64) * 5);
    delete[] p;
    auto* q = new Aligned4096;
    ReportNew("new Aligned4096", q, 4096, sizeof(Aligned4096));
    delete q;
  }
  ExpectBadAlloc("operator new(2^62)", [] { return ::operator new(kHuge); });
  ExpectBadAlloc("operator new(SIZE_MAX)", [] { return ::operator new(SIZE_MAX); });
  ExpectBadAlloc("operator new[](2^62)", [] { return ::operator new[](kHuge); });
  ExpectBadAlloc("operator new(2^62,align 64)",
                 [] { return ::operator new(kHuge, std::align_val_t(64)); });
  ExpectBadAlloc("operator new(2^62,nothrow)",
                 [] { return ::operator new(kHuge, std::nothrow); });
  ExpectBadAlloc("operator new[](2^62,nothrow)",
                 [] { return ::operator new[](kHuge, std::nothrow); });
  ExpectBadAlloc("operator new(2^62,align 4096,nothrow)", [] {
    return ::operator new(kHuge, std::align_val_t(4096), std::nothrow);
  });
  ExpectBadAlloc("new char[n] n=2^62", [] {
    volatile size_t n = kHuge;
    return static_cast<void*>(new char[n]);
  });
}

// Blocks allocated on one thread and freed (or reallocated) on another, as
// producer/consumer code does: a sampled block must be recognised wherever
// it is freed.
void CheckCrossThread() {
  constexpr int kBlocks = 20000;
  std::vector<void*> blocks(kBlocks);
  std::thread producer([&] {
    for (int i = 0; i < kBlocks; ++i) {
      const size_t size = 16 + static_cast<size_t>(i % 97) * 40;
      void* p = (i % 5 == 0) ? aligned_alloc(64, size) : malloc(size);
      Fill(p, size, static_cast<unsigned char>(i));
      blocks[i] = p;
    }
  });
  producer.join();
  bool ok = true;
  std::thread consumer([&] {
    for (int i = 0; i < kBlocks; ++i) {
      const size_t size = 16 + static_cast<size_t>(i % 97) * 40;
      ok = ok && Holds(blocks[i], size, static_cast<unsigned char>(i));
      if (i % 3 == 0) {
        void* q = realloc(blocks[i], size * 2);
        ok = ok && q != nullptr && Holds(q, size, static_cast<unsigned char>(i));
        blocks[i] = q;
      }
      free(blocks[i]);
    }
  });
  consumer.join();
  std::printf("cross-thread alloc, realloc and free: contents=%s\n", ok ? "ok" : "BAD");
}

// A child of fork() keeps allocating (the agent's tables and locks were
// copied mid-use, possibly) and exits normally.
void CheckFork() {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    bool ok = true;
    for (int i = 0; i < 10000; ++i) {
      void* p = malloc(static_cast<size_t>(i % 500) * 16 + 1);
      void* q = ::operator new(100, std::align_val_t(64));
      ok = ok && p != nullptr && Aligned(q, 64);
      g_sink = p;
      free(p);
      ::operator delete(q, std::align_val_t(64));
    }
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  const bool reaped = pid > 0 && waitpid(pid, &status, 0) == pid;
  std::printf("fork child allocates and exits: %s\n",
              reaped && WIFEXITED(status) && WEXITSTATUS(status) == 0
                  ? "ok"
                  : "BAD");
}

}  // namespace

// Call sites the heap profile must show at rate 1: each keeps its block live
// until exit. External linkage keeps the names simple in the profile.
void* g_keep[8];
IT_SITE void NewPlainSite() { g_keep[0] = new char[1 << 16]{1}; }
IT_SITE void NewScalarSite() { g_keep[1] = new std::string(40000, 'x'); }
IT_SITE void NewNothrowSite() { g_keep[2] = new (std::nothrow) char[1 << 16]{1}; }
IT_SITE void NewAlignedSite() {
  g_keep[3] = ::operator new(1 << 16, std::align_val_t(4096));
  static_cast<char*>(g_keep[3])[0] = 1;
}

void FreeKept() {
  delete[] static_cast<char*>(g_keep[0]);
  delete static_cast<std::string*>(g_keep[1]);
  delete[] static_cast<char*>(g_keep[2]);
  ::operator delete(g_keep[3], std::align_val_t(4096));
}

}  // namespace it

int main() {
  it::StartAgentIfLinked();
  it::CheckMalloc();
  it::CheckCalloc();
  it::CheckRealloc();
  it::CheckReallocarray();
  it::CheckAligned();
  it::CheckOperatorNew();
  it::CheckCrossThread();
  it::CheckFork();
  std::printf("DONE\n");
  it::NewPlainSite();
  it::NewScalarSite();
  it::NewNothrowSite();
  it::NewAlignedSite();
  it::AnnounceReady();
  const bool ok = it::WaitForStdinClose();
  it::FreeKept();
  return ok ? 0 : 3;
}
