// pthread_create, as libpprof_agent.so interposes it: every thread the
// application creates starts in a small trampoline that runs the agent's
// thread-start hooks, then tail-calls the real start routine; a pthread key
// destructor runs the thread-exit hooks however the thread ends (return,
// pthread_exit, cancellation).
//
// Contract:
//  - Called from anywhere an application creates a thread, including before
//    the agent's constructor (static constructors of other libraries) and from
//    the agent's own server start-up. Results and errno are the real
//    pthread_create's; the thread is created exactly as asked (same
//    attributes: stack size, detach state, signal mask inherited).
//  - The creating thread pays one RealMalloc/RealFree of 32 bytes, one stack
//    capture for the threadcreate profile (a few microseconds; see
//    thread_create_profiler.h) and, the first time, a dlsym; the new thread
//    pays one pthread_setspecific and, only while a CPU profile runs, the
//    creation of its timer.
//  - No allocation from the profiled heap on the agent's behalf: the context
//    travels in RealMalloc memory (malloc_backend.h). If that allocation
//    fails, the thread is created unwrapped (then not covered by the hooks).
//
// The hooks, in order:
//  1. OnThreadCreate (creating thread): the threadcreate profile captures the
//     creator's stack into ctx->creator_stack_id; pthread_create records it
//     once the real call succeeded.
//  2. OnThreadStart (new thread, before its start routine): the CPU profiler
//     arms the thread's own CPU timer when a profile runs.
//  3. OnThreadExit (new thread, at exit): the CPU profiler deletes its timer.
#include "profiler/hooks/thread_hooks.h"
#include "profiler/heap/thread_registry.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "profiler/cpu/cpu_profiler.h"
#include "profiler/base/malloc_backend.h"
#include "profiler/threads/thread_create_profiler.h"
#include "profiler/base/thread_state.h"

#define PA_INTERPOSE extern "C" __attribute__((visibility("default")))

namespace pprof_agent::internal {
namespace {

using PthreadCreateFn = int (*)(pthread_t*, const pthread_attr_t*,
                                void* (*)(void*), void*);

std::atomic<PthreadCreateFn> g_real_pthread_create{nullptr};

PthreadCreateFn RealPthreadCreate() {
  PthreadCreateFn fn = g_real_pthread_create.load(std::memory_order_acquire);
  if (PA_LIKELY(fn != nullptr)) return fn;
  ReentrancyGuard guard;  // dlsym may allocate
  // The default version (GLIBC_2.34 on glibc >= 2.34); the older binaries'
  // pthread_create@GLIBC_2.2.5 is the same function there.
  fn = reinterpret_cast<PthreadCreateFn>(dlsym(RTLD_NEXT, "pthread_create"));
  g_real_pthread_create.store(fn, std::memory_order_release);
  return fn;
}

// --- hooks -----------------------------------------------------------------

// Creating thread, before the real pthread_create.
void OnThreadCreate(ThreadStartContext* ctx) {
  ctx->creator_stack_id = ThreadCreateCaptureStack();
}

void OnThreadStart(const ThreadStartContext& ctx) {
  (void)ctx;
  CpuOnThreadStart();
}

void OnThreadExit() {
  CpuOnThreadExit();
  ThreadRegistryOnExit();  // heap samples' thread_state=exited (idempotent)
}

// --- exit detection ------------------------------------------------------------

pthread_key_t g_exit_key;
std::atomic<bool> g_exit_key_ok{false};
pthread_once_t g_exit_key_once = PTHREAD_ONCE_INIT;

void ExitKeyDestructor(void*) {
  const int saved_errno = errno;
  OnThreadExit();
  errno = saved_errno;
}

void CreateExitKey() {
  if (pthread_key_create(&g_exit_key, ExitKeyDestructor) == 0) {
    g_exit_key_ok.store(true, std::memory_order_release);
  }
}

}  // namespace
}  // namespace pprof_agent::internal

using namespace pprof_agent::internal;  // NOLINT: the C entry points below

// The new thread's first function. Not in namespace pprof_agent: pprof's
// drop_frames hides pprof_agent::* frames *and every caller above them*,
// which for a frame at the root of every thread would hide everything. The
// start routine is tail-called, so this frame is normally gone by the time
// anything samples the thread anyway.
extern "C" __attribute__((visibility("hidden"))) void* pprof_agent_thread_start(
    void* raw) {
  const ThreadStartContext ctx = *static_cast<ThreadStartContext*>(raw);
  RealFree(raw);
  if (g_exit_key_ok.load(std::memory_order_acquire)) {
    // Any non-null value: the destructor runs at thread exit.
    pthread_setspecific(g_exit_key, reinterpret_cast<void*>(1));
  }
  OnThreadStart(ctx);
  return ctx.start_routine(ctx.arg);
}

PA_INTERPOSE int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                                void* (*start_routine)(void*), void* arg) {
  const int saved_errno = errno;
  PthreadCreateFn real = RealPthreadCreate();
  if (real == nullptr) return EAGAIN;  // no libc pthread_create: cannot happen
  pthread_once(&g_exit_key_once, CreateExitKey);
  auto* ctx = static_cast<ThreadStartContext*>(
      RealMalloc(sizeof(ThreadStartContext)));
  errno = saved_errno;
  if (ctx == nullptr) return real(thread, attr, start_routine, arg);
  ctx->start_routine = start_routine;
  ctx->arg = arg;
  ctx->creator_stack_id = 0;
  OnThreadCreate(ctx);
  // Once created, the thread owns (and frees) ctx.
  const uint32_t creator_stack_id = ctx->creator_stack_id;
  errno = saved_errno;
  const int rc = real(thread, attr, pprof_agent_thread_start, ctx);
  if (rc != 0) {
    RealFree(ctx);
  } else {
    ThreadCreateRecord(creator_stack_id);
  }
  return rc;
}
