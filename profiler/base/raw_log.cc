// RawLog: formats into a stack buffer and writes one line with write(2).
#include "profiler/base/raw_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

namespace pprof_agent::internal {
namespace {

class Buffer {
 public:
  void Put(char c) {
    if (len_ < sizeof(buf_) - 1) buf_[len_++] = c;
  }
  void Str(const char* s) {
    for (; s != nullptr && *s; ++s) Put(*s);
  }
  void Unsigned(uint64_t v, unsigned base) {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v % base];
      v /= base;
    } while (v != 0);
    while (n > 0) Put(tmp[--n]);
  }
  void Signed(int64_t v) {
    if (v < 0) {
      Put('-');
      Unsigned(static_cast<uint64_t>(-(v + 1)) + 1, 10);
    } else {
      Unsigned(static_cast<uint64_t>(v), 10);
    }
  }
  void Flush() {
    buf_[len_++] = '\n';
    size_t off = 0;
    while (off < len_) {
      ssize_t n = write(STDERR_FILENO, buf_ + off, len_ - off);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return;
      }
      off += static_cast<size_t>(n);
    }
  }

 private:
  char buf_[512];
  size_t len_ = 0;
};

}  // namespace

void RawLog(const char* format, ...) {
  int saved_errno = errno;
  Buffer out;
  out.Str("pprof-agent: ");
  va_list ap;
  va_start(ap, format);
  for (const char* p = format; *p; ++p) {
    if (*p != '%') {
      out.Put(*p);
      continue;
    }
    ++p;
    bool is_long = false;
    while (*p == 'l') {
      is_long = true;
      ++p;
    }
    switch (*p) {
      case 's': out.Str(va_arg(ap, const char*)); break;
      case 'd':
        out.Signed(is_long ? va_arg(ap, long) : va_arg(ap, int));
        break;
      case 'u':
        out.Unsigned(is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10);
        break;
      case 'x':
        out.Unsigned(is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16);
        break;
      case 'p':
        out.Str("0x");
        out.Unsigned(reinterpret_cast<uintptr_t>(va_arg(ap, void*)), 16);
        break;
      case '%': out.Put('%'); break;
      case '\0': --p; break;
      default: out.Put('?'); break;
    }
  }
  va_end(ap);
  out.Flush();
  errno = saved_errno;
}

}  // namespace pprof_agent::internal
