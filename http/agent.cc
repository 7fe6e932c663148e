// The public API (pprof_agent.h) and the load-time start-up of
// libpprof_agent.so: read the environment once, set the heap rate, turn
// sampling on, and start the server by itself when the library was
// preloaded (or PPROF_AGENT_AUTOSTART=1). Linked only into the shared
// library, so the layer archives used by unit tests start nothing.
//
// Fork policy: the child of a fork() does not serve. The server's threads do
// not exist there; the child closes its copy of the listening socket (so the
// port belongs to the parent alone) and may call Start() again, on another
// port. A child that execs with LD_PRELOAD still set is a new process: its
// own constructor runs, and it serves if it can bind.
#include <pthread.h>

#include <exception>
#include <mutex>
#include <new>
#include <string>

#include "http/config.h"
#include "http/log.h"
#include "http/server.h"
#include "pprof_agent/pprof_agent.h"
#include "profiler/contention/contention_profiler.h"
#include "profiler/base/runtime.h"
#include "profiler/threads/thread_dump.h"

namespace pprof_agent {
namespace {

using internal::Config;

struct AgentState {
  std::mutex mu;
  Config env_config;  // guarded by mu; read once, by the constructor
  bool env_read = false;
  internal::Server server;  // guarded by mu
};

// Never destroyed: at exit, static destructors run while server threads may
// still be answering a request; a destroyed server under them would crash
// the host on its way out. Exit ends the threads instead.
AgentState& State() {
  static AgentState* state = new AgentState;
  return *state;
}

const Config& EnvConfigLocked(AgentState& state) {
  if (!state.env_read) {
    state.env_config = internal::ConfigFromEnv();
    state.env_read = true;
  }
  return state.env_config;
}

// Starts (or restarts) serving `config`, or stops serving when its address
// is "off". Failures are logged here, in one line, and returned.
Status StartLocked(AgentState& state, const Config& config) {
  internal::Address address;
  std::string error;
  if (internal::ParseAddress(config.address, &address, &error) && address.off) {
    state.server.Stop();
    return Status();
  }
  Status status = state.server.Start(config);
  if (!status.ok()) internal::LogLine(status.message());
  return status;
}

void AtForkChild() {
  AgentState& state = State();
  // The thread that held the mutex at fork() does not exist in the child;
  // a fresh mutex is the only usable one. Only async-signal-safe work here.
  new (&state.mu) std::mutex;
  state.server.AbandonAfterFork();
}

__attribute__((constructor)) void AgentStartUp() {
  try {
    AgentState& state = State();
    std::lock_guard<std::mutex> lock(state.mu);
    const Config& config = EnvConfigLocked(state);  // logs bad values
    internal::SetHeapRate(config.heap_rate);
    internal::SetMutexRate(config.mutex_rate);
    internal::SetBlockRate(config.block_rate);
    internal::SetLockStacksPerSecond(config.lock_stacks_per_sec);
    if (config.dump_signal != 0) internal::SetThreadDumpSignal(config.dump_signal);
    // Hooks pass straight through until now: the environment is read and
    // the rate set, so the first sample uses the configured rate.
    internal::EnableSampling();
    pthread_atfork(nullptr, nullptr, AtForkChild);
    if (internal::ShouldAutostart(config)) {
      (void)StartLocked(state, config);
    }
  } catch (const std::exception& e) {
    // The host must run normally whatever happens to its agent.
    internal::LogLine(std::string("start-up failed: ") + e.what());
  } catch (...) {
    internal::LogLine("start-up failed");
  }
}

}  // namespace

Status Start(const Options& options) {
  try {
    AgentState& state = State();
    std::lock_guard<std::mutex> lock(state.mu);
    const Config config = internal::Merge(EnvConfigLocked(state), options);
    if (Status status = internal::Validate(config); !status.ok()) {
      internal::LogLine(status.message());
      return status;
    }
    // Only an explicit option changes the rate: a rate set at run time with
    // SetHeapSampleRate() survives a restart that does not mention it.
    if (options.heap_sample_rate != -1) {
      internal::SetHeapRate(options.heap_sample_rate);
    }
    return StartLocked(state, config);
  } catch (const std::exception& e) {
    std::string message = std::string("cannot start: ") + e.what();
    internal::LogLine(message);
    return Status(message);
  }
}

void Stop() {
  AgentState& state = State();
  std::lock_guard<std::mutex> lock(state.mu);
  state.server.Stop();
}

int Port() {
  AgentState& state = State();
  std::lock_guard<std::mutex> lock(state.mu);
  return state.server.port();
}

void SetHeapSampleRate(int64_t bytes) {
  if (bytes < 0) {
    internal::LogLine("ignoring SetHeapSampleRate(" + std::to_string(bytes) +
                      "): the rate must be >= 0");
    return;
  }
  internal::SetHeapRate(bytes);
}

int64_t HeapSampleRate() { return internal::HeapRate(); }

}  // namespace pprof_agent
