// In-memory lookup of a versioned dynamic symbol; see libc_symbols.h.
#include "profiler/base/libc_symbols.h"

#include <elf.h>
#include <link.h>

#include <cstdint>
#include <cstring>

namespace pprof_agent::internal {
namespace {

struct Query {
  uintptr_t anchor;
  const char* name;
  const char* version;
  void* result;
};

bool Contains(const dl_phdr_info* info, uintptr_t address) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    if (address >= begin && address < begin + ph.p_memsz) return true;
  }
  return false;
}

// The loader relocates most d_ptr entries of .dynamic in place (x86-64);
// accept either form.
uintptr_t Absolute(uintptr_t base, uintptr_t ptr) {
  return ptr < base ? base + ptr : ptr;
}

// Number of dynamic symbols, from the GNU hash table: one past the highest
// symbol index any chain reaches.
uint32_t GnuHashSymbolCount(const uint32_t* table) {
  const uint32_t nbuckets = table[0];
  const uint32_t symoffset = table[1];
  const uint32_t bloom_size = table[2];
  const auto* buckets = reinterpret_cast<const uint32_t*>(
      reinterpret_cast<const ElfW(Addr)*>(table + 4) + bloom_size);
  const uint32_t* chains = buckets + nbuckets;
  uint32_t last = 0;
  for (uint32_t i = 0; i < nbuckets; ++i) last = buckets[i] > last ? buckets[i] : last;
  if (last < symoffset) return symoffset;
  while ((chains[last - symoffset] & 1) == 0) ++last;
  return last + 1;
}

int Visit(dl_phdr_info* info, size_t, void* data) {
  auto* q = static_cast<Query*>(data);
  if (!Contains(info, q->anchor)) return 0;
  const ElfW(Dyn)* dyn = nullptr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) {
      dyn = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr +
                                               info->dlpi_phdr[i].p_vaddr);
    }
  }
  if (dyn == nullptr) return 1;
  const uintptr_t base = info->dlpi_addr;
  const ElfW(Sym)* symtab = nullptr;
  const char* strtab = nullptr;
  const uint32_t* gnu_hash = nullptr;
  const uint32_t* sysv_hash = nullptr;
  const ElfW(Half)* versym = nullptr;
  const ElfW(Verdef)* verdef = nullptr;
  for (; dyn->d_tag != DT_NULL; ++dyn) {
    const uintptr_t p = Absolute(base, dyn->d_un.d_ptr);
    switch (dyn->d_tag) {
      case DT_SYMTAB: symtab = reinterpret_cast<const ElfW(Sym)*>(p); break;
      case DT_STRTAB: strtab = reinterpret_cast<const char*>(p); break;
      case DT_GNU_HASH: gnu_hash = reinterpret_cast<const uint32_t*>(p); break;
      case DT_HASH: sysv_hash = reinterpret_cast<const uint32_t*>(p); break;
      case DT_VERSYM: versym = reinterpret_cast<const ElfW(Half)*>(p); break;
      case DT_VERDEF: verdef = reinterpret_cast<const ElfW(Verdef)*>(p); break;
      default: break;
    }
  }
  if (symtab == nullptr || strtab == nullptr || versym == nullptr ||
      verdef == nullptr) {
    return 1;
  }
  const uint32_t count = gnu_hash != nullptr ? GnuHashSymbolCount(gnu_hash)
                         : sysv_hash != nullptr ? sysv_hash[1]
                                                : 0;
  // The version index whose name is q->version.
  int wanted = -1;
  for (const ElfW(Verdef)* d = verdef;;) {
    const auto* aux = reinterpret_cast<const ElfW(Verdaux)*>(
        reinterpret_cast<const char*>(d) + d->vd_aux);
    if (strcmp(strtab + aux->vda_name, q->version) == 0) wanted = d->vd_ndx;
    if (d->vd_next == 0) break;
    d = reinterpret_cast<const ElfW(Verdef)*>(reinterpret_cast<const char*>(d) +
                                              d->vd_next);
  }
  if (wanted < 0) return 1;
  for (uint32_t i = 1; i < count; ++i) {
    const ElfW(Sym)& sym = symtab[i];
    if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
    if ((versym[i] & 0x7fff) != wanted) continue;
    if (strcmp(strtab + sym.st_name, q->name) != 0) continue;
    q->result = reinterpret_cast<void*>(base + sym.st_value);
    break;
  }
  return 1;
}

}  // namespace

void* FindVersionedSymbol(const void* anchor, const char* name,
                          const char* version) {
  Query q{reinterpret_cast<uintptr_t>(anchor), name, version, nullptr};
  dl_iterate_phdr(Visit, &q);
  return q.result;
}

}  // namespace pprof_agent::internal
