// libFuzzer target: the profile builder (proto/profile_builder.h) on
// snapshots decoded from arbitrary bytes, with a SymbolSource test double
// whose answers are decoded from the same bytes. Snapshots keep the
// recorders' invariants (stack indices in range, one value per sample type);
// everything else (addresses, symbols, names, extreme values, empty parts) is
// arbitrary. The protobuf and the text forms are built, the texts with
// limits that cut them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "proto/profile_builder.h"

using namespace pprof_agent::internal;

namespace {

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  uint8_t Byte() { return empty() ? 0 : *p_++; }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | Byte();
    return v;
  }
  int64_t Small() { return static_cast<int8_t>(Byte()); }
  int64_t Value() {
    switch (Byte() % 4) {
      case 0: return Small();
      case 1: return static_cast<int64_t>(U64());
      case 2: return INT64_MAX;
      default: return INT64_MIN;
    }
  }
  uint64_t Address() {
    switch (Byte() % 4) {
      case 0: return Byte();
      case 1: return 0x400000 + Byte() * 16;
      case 2: return U64();
      default: return 0x7f0000000000ull + Byte() * 64;
    }
  }
  std::string Str() {
    std::string s;
    const int n = Byte() % 12;
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(Byte()));
    return s;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

class FakeSymbols final : public SymbolSource {
 public:
  explicit FakeSymbols(Reader* r) : r_(r) {}
  std::vector<MappingInfo> Mappings() override {
    std::vector<MappingInfo> m;
    const int n = r_->Byte() % 4;
    for (int i = 0; i < n; ++i) {
      MappingInfo info;
      info.start = r_->Address();
      info.limit = info.start + r_->Byte() * 4096;
      info.offset = r_->Byte() * 4096;
      info.path = r_->Str();
      info.build_id = r_->Str();
      m.push_back(info);
    }
    mappings_ = n;
    return m;
  }
  LocationInfo Symbolize(uint64_t) override {
    LocationInfo loc;
    loc.mapping = static_cast<int>(r_->Byte() % (mappings_ + 2)) - 1;
    const int frames = r_->Byte() % 4;
    for (int i = 0; i < frames; ++i) {
      FrameInfo f;
      f.name = r_->Str();
      f.system_name = r_->Str();
      f.file = r_->Str();
      f.line = r_->Small();
      f.column = r_->Small();
      f.start_line = r_->Small();
      loc.frames.push_back(f);
    }
    return loc;
  }

 private:
  Reader* r_;
  int mappings_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r(data, size);
  Snapshot s;
  const int types = r.Byte() % 5;
  const char* kTypes[] = {"alloc_objects", "alloc_space", "inuse_objects",
                          "inuse_space", "contentions", "delay", "samples"};
  for (int i = 0; i < types; ++i) {
    s.sample_types.push_back({r.Byte() % 2 ? kTypes[r.Byte() % 7] : r.Str(), r.Str()});
  }
  s.period_type = {r.Str(), r.Str()};
  s.period = r.Value();
  s.default_sample_type = r.Byte() % 2 ? std::string(kTypes[r.Byte() % 7]) : r.Str();
  s.time_nanos = r.Value();
  s.duration_nanos = r.Value();
  const int stacks = r.Byte() % 8;
  for (int i = 0; i < stacks; ++i) {
    Stack st;
    st.leaf_is_pc = r.Byte() % 2;
    const int depth = r.Byte() % 70;
    for (int d = 0; d < depth; ++d) st.pcs.push_back(r.Address());
    s.stacks.push_back(st);
  }
  const int samples = r.Byte() % 16;
  for (int i = 0; i < samples; ++i) {
    Sample sm;
    if (stacks == 0) break;
    sm.stack = r.Byte() % stacks;
    const int values = types;
    for (int v = 0; v < values; ++v) sm.values.push_back(r.Value());
    const int labels = r.Byte() % 4;
    for (int l = 0; l < labels; ++l) {
      sm.labels.push_back(r.Byte() % 2 ? Label::Num(r.Str(), r.Value(), r.Str())
                                       : Label::Str(r.Str(), r.Str()));
    }
    s.samples.push_back(sm);
  }
  const int comments = r.Byte() % 3;
  for (int i = 0; i < comments; ++i) s.comments.push_back(r.Str());

  const uint8_t which = r.Byte() % 6;
  // Text size limits small enough to cut these texts (kMaxTextBytes, at
  // 32 MiB, never would): any limit gives a text that still has its header.
  const size_t limit = r.Byte() % 2 ? kMaxTextBytes : r.Byte() * size_t{8};
  FakeSymbols symbols(&r);
  std::string text;
  switch (which) {
    case 0: BuildProfileProto(s, symbols); break;
    case 1: BuildProfileGzip(s, symbols); break;
    case 2: text = LegacyHeapText(s, symbols, limit); break;
    case 3: text = LegacyContentionText(s, "mutex", r.Value(), symbols, limit); break;
    case 4: text = LegacyCountProfileText(s, "goroutine", symbols, limit); break;
    default: BuildProfileProto(s, symbols); text = LegacyHeapText(s, symbols, limit); break;
  }
  if (which >= 2 && text.find('\n') == std::string::npos) std::abort();
  return 0;
}
