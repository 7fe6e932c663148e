// /debug/pprof/profile: the CPU profile, as Go's net/http/pprof serves it
// (Handlers::CpuProfile; routing in handlers.cc).
//
//   seconds  duration, default 30 (capped at max_seconds when that is lower);
//            above max_seconds or not a positive integer: 400.
//   hz       samples per second of CPU time, 1..1000; default PPROF_AGENT_CPU_HZ
//            (100). Not in Go: its rate is fixed at 100.
//   debug    accepted (0, 1 or 2) and ignored, as Go does: the CPU profile
//            exists only as protobuf. The index page links it as profile?debug=1.
//
// One profile at a time: a second request gets 409 at once, in Go's words
// ("Could not enable CPU profiling: cpu profiling already in use"); any other
// failure to start (the signal has an application handler, or every thread
// blocks it) is a 500 with the same prefix, as Go answers a failed
// StartCPUProfile. The request's thread drains the sample buffer every
// 100 ms; a client that closes its connection or a server that stops ends
// the profile early.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>

#include "http/handlers.h"
#include "profiler/cpu/cpu_profiler.h"
#include "profiler/symbols/symbolizer.h"
#include "proto/profile_builder.h"

namespace pprof_agent::internal {
namespace {

// Go's default duration.
constexpr int64_t kDefaultCpuSeconds = 30;
// How often the request's thread drains the handler's buffer and checks the
// client: the buffer holds far more than this at any rate the kernel delivers.
constexpr std::chrono::milliseconds kPollInterval{100};

}  // namespace

HttpResponse Handlers::CpuProfile(const HttpRequest& request) {
  int64_t seconds = std::min(kDefaultCpuSeconds, max_seconds_);
  if (const std::string* text = FindParam(request.params, "seconds");
      text != nullptr && !text->empty()) {
    if (auto error = ParseSeconds(*text, max_seconds_, &seconds)) {
      return ErrorResponse(error->status, error->message);
    }
  }
  int64_t hz = cpu_hz_;
  if (const std::string* text = FindParam(request.params, "hz");
      text != nullptr && !text->empty()) {
    if (!ParseNonNegativeInt(*text, &hz) || hz < 1 || hz > kMaxCpuHz) {
      return ErrorResponse(400, "invalid value for \"hz\" - must be an integer "
                                "from 1 to " + std::to_string(kMaxCpuHz));
    }
  }
  if (const std::string* text = FindParam(request.params, "debug");
      text != nullptr && !text->empty()) {
    int debug = 0;
    if (auto error = ParseDebug(*text, &debug)) {
      return ErrorResponse(error->status, error->message);
    }
  }
  {
    std::lock_guard<std::mutex> lock(wait_mu_);
    if (shutting_down_) {
      return ErrorResponse(503, "the agent's server is stopping");
    }
  }

  CpuProfileOptions options;
  options.hz = static_cast<int>(hz);
  options.signal = cpu_signal_;
  CpuStartError start_error = CpuStartError::kNone;
  std::string message;
  std::unique_ptr<CpuProfileSession> session =
      CpuProfileSession::Start(options, &start_error, &message);
  if (session == nullptr) {
    const int status = start_error == CpuStartError::kBusy ? 409 : 500;
    return ErrorResponse(status, "Could not enable CPU profiling: " + message);
  }

  enum class End { kDuration, kClientGone, kShutdown, kHandlerReplaced };
  End end = End::kDuration;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    {
      std::unique_lock<std::mutex> lock(wait_mu_);
      // The steady clock: wall-clock jumps neither cut nor stretch a profile.
      if (wait_cv_.wait_until(lock, std::min(now + kPollInterval, deadline),
                              [this] { return shutting_down_; })) {
        end = End::kShutdown;
        break;
      }
    }
    if (!session->Poll()) {
      end = End::kHandlerReplaced;
      break;
    }
    if (request.client_gone && request.client_gone()) {
      end = End::kClientGone;
      break;
    }
  }
  const CpuRaw raw = session->Stop();
  session.reset();
  switch (end) {
    case End::kShutdown:
      return ErrorResponse(503,
                           "profile canceled: the agent's server is stopping");
    case End::kClientGone:
      // Nobody reads this; building the profile would only cost CPU.
      return ErrorResponse(400, "profile canceled: the client went away");
    case End::kHandlerReplaced:  // a partial profile; its comments say why
    case End::kDuration:
      break;
  }
  return ProfileResponse(
      BuildProfileGzip(CpuProfileSnapshot(raw), Symbolizer::Global()), "profile");
}

}  // namespace pprof_agent::internal
