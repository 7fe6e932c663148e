// This process's threads as /proc shows them: the list of task ids and each
// task's name, state and blocked signals. Used by the CPU profiler (which
// threads to arm) and the thread dump (which threads to signal, and what to
// say about those that cannot answer).
//
// Cold paths only: these allocate and make system calls. Not for signal
// handlers or hooks.
#ifndef PPROF_AGENT_PROFILER_BASE_PROC_TASKS_H_
#define PPROF_AGENT_PROFILER_BASE_PROC_TASKS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pprof_agent::internal {

// Reads at most size - 1 bytes of `path` into `buf` and NUL-terminates them;
// *len is the count. False when the file cannot be opened or is empty (a
// thread that exited meanwhile).
bool ReadSmallFile(const char* path, char* buf, size_t size, size_t* len);

// The ids in /proc/self/task, ascending.
std::vector<int32_t> ListTasks();

// The value of the "Name:"-style field `name` in the text of a status file,
// blanks after the colon skipped; empty if absent. Pure.
std::string_view StatusField(std::string_view text, std::string_view name);

struct TaskStatus {
  std::string name;
  char state = '?';             // R, S, D, T, t, Z, X...
  bool blocks_signal = false;   // `signo` is in the task's SigBlk mask
};

// One read of /proc/self/task/<tid>/status. False when the thread is gone.
bool ReadTaskStatus(int32_t tid, int signo, TaskStatus* status);

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROFILER_BASE_PROC_TASKS_H_
