// libpa_sym_dl.so: the library sym_program dlopens, allocates from and later
// dlcloses. Built -O2 -g. No templates, inline variables or other
// STB_GNU_UNIQUE symbols, which would keep it from unloading.
#include <cstdlib>

// Out of line and unclonable (noipa also stops identical-code folding);
// clang has no noipa, noinline is the nearest.
#if defined(__clang__)
#define PA_DL_OUT_OF_LINE __attribute__((noinline))
#else
#define PA_DL_OUT_OF_LINE __attribute__((noipa))
#endif

namespace sym_dl {

constexpr int kMaxBlocks = 256;
constexpr unsigned long kBlockBytes = 48 * 1024;
// The blocks stay allocated after dlclose: the heap profile keeps samples
// whose stacks point into the unloaded code.
char* volatile g_blocks[kMaxBlocks];

PA_DL_OUT_OF_LINE void AllocateInLibrary(int n) {
  for (int i = 0; i < n && i < kMaxBlocks; ++i) {
    char* p = static_cast<char*>(std::malloc(kBlockBytes));  // MARK:dl
    p[0] = static_cast<char>(i);
    g_blocks[i] = p;
  }
}

}  // namespace sym_dl

extern "C" __attribute__((visibility("default"))) void pa_sym_dl_allocate(int n) {
  sym_dl::AllocateInLibrary(n);
  // Not a tail call: AllocateInLibrary's frame keeps this one as caller.
  sym_dl::g_blocks[0][1] = 1;
}
