// See proc_tasks.h.
#include "profiler/base/proc_tasks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace pprof_agent::internal {

bool ReadSmallFile(const char* path, char* buf, size_t size, size_t* len) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t used = 0;
  while (used + 1 < size) {
    const ssize_t n = read(fd, buf + used, size - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<size_t>(n);
  }
  close(fd);
  buf[used] = '\0';
  *len = used;
  return used > 0;
}

std::vector<int32_t> ListTasks() {
  std::vector<int32_t> tids;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return tids;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long tid = strtol(entry->d_name, &end, 10);
    if (end != entry->d_name && *end == '\0' && tid > 0) {
      tids.push_back(static_cast<int32_t>(tid));
    }
  }
  closedir(dir);
  std::sort(tids.begin(), tids.end());
  return tids;
}

std::string_view StatusField(std::string_view text, std::string_view name) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (line.substr(0, name.size()) == name) {
      line.remove_prefix(name.size());
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
        line.remove_prefix(1);
      }
      return line;
    }
    pos = end + 1;
  }
  return {};
}

bool ReadTaskStatus(int32_t tid, int signo, TaskStatus* status) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
  char buf[4096];
  size_t len = 0;
  if (!ReadSmallFile(path, buf, sizeof(buf), &len)) return false;
  const std::string_view text(buf, len);
  status->name = std::string(StatusField(text, "Name:"));
  const std::string_view state = StatusField(text, "State:");
  status->state = state.empty() ? '?' : state.front();
  const std::string_view blocked = StatusField(text, "SigBlk:");
  // A hex mask, most significant digit first; bit (signo - 1).
  status->blocks_signal = false;
  const int bit = signo - 1;
  const size_t digit_from_right = static_cast<size_t>(bit / 4);
  if (signo > 0 && digit_from_right < blocked.size()) {
    const char c = blocked[blocked.size() - 1 - digit_from_right];
    const int value = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    status->blocks_signal = (value >> (bit % 4)) & 1;
  }
  return true;
}

}  // namespace pprof_agent::internal
