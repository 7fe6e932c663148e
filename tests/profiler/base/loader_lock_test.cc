// The loader-lock probe that keeps signal handlers from unwinding into a
// deadlock on glibc's dl_load_write_lock.
#include "profiler/base/loader_lock.h"

#include <link.h>

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace pprof_agent::internal {
namespace {

TEST(LoaderLock, BusyOnlyForItsOwnHolder) {
  ASSERT_TRUE(FindLoaderLock()) << "glibc's loader lock not found in _rtld_global";
  EXPECT_FALSE(LoaderLockBusy());
  // Inside a dl_iterate_phdr() callback this thread holds the lock: an
  // unwind here (in a signal handler) would wait for itself.
  bool busy_inside = false;
  dl_iterate_phdr(
      [](dl_phdr_info*, size_t, void* data) {
        *static_cast<bool*>(data) = LoaderLockBusy();
        return 1;
      },
      &busy_inside);
  EXPECT_TRUE(busy_inside);
  // Another thread holding it (as every thread does that unwinds in a
  // thread dump): this thread may unwind, it only waits. Treating that as
  // busy cut stacks to their leaf whenever two threads unwound at once.
  struct Shared {
    std::atomic<int> stage{0};
  } shared;
  std::thread holder([&shared] {
    dl_iterate_phdr(
        [](dl_phdr_info*, size_t, void* data) {
          auto* sh = static_cast<Shared*>(data);
          sh->stage.store(1);
          while (sh->stage.load() != 2) std::this_thread::yield();
          return 1;
        },
        &shared);
  });
  while (shared.stage.load() != 1) std::this_thread::yield();
  EXPECT_FALSE(LoaderLockBusy());
  shared.stage.store(2);
  holder.join();
  EXPECT_FALSE(LoaderLockBusy());
}

}  // namespace
}  // namespace pprof_agent::internal
