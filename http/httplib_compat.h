// The only way http/ code and its tests include cpp-httplib.
//
// Debian's libcpp-httplib.so is compiled with the macros below (see
// cpp-httplib.pc), and they change class layouts: Request gains `ssl`,
// Client gains `is_ssl_`, ClientImpl gains several members. A translation
// unit that includes <httplib.h> without them disagrees with the library
// about object sizes and offsets, which corrupts memory at run time rather
// than failing to link. Keep these in step with the installed library.
#ifndef PPROF_AGENT_HTTP_HTTPLIB_COMPAT_H_
#define PPROF_AGENT_HTTP_HTTPLIB_COMPAT_H_

#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT
#endif
#ifndef CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#endif
#ifndef CPPHTTPLIB_BROTLI_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#endif

#include <httplib.h>

static_assert(CPPHTTPLIB_VERSION[0] == '0' && CPPHTTPLIB_VERSION[2] == '1' &&
                  CPPHTTPLIB_VERSION[3] == '1' && CPPHTTPLIB_VERSION[4] == '.',
              "http/ was written against cpp-httplib 0.11.x: re-check the "
              "SIGPIPE, SO_REUSEPORT and TaskQueue notes in server.cc");

#endif  // PPROF_AGENT_HTTP_HTTPLIB_COMPAT_H_
