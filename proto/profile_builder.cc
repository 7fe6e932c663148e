// Snapshot + symbols -> pprof bytes: the perftools Profile message (and its
// gzip), and Go's legacy `heap?debug=1` text. Runs on the server's thread on
// request, never inside a hook, so it allocates freely; it must still never
// crash on a malformed snapshot, because it is fuzzed: bad samples are
// skipped and counted in the output's comments.
#include "proto/profile_builder.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proto/wire_encoder.h"

namespace pprof_agent::internal {
namespace {

// Field numbers of profile.proto (PPROF_REFERENCE.md). The message is written
// with WireEncoder; fields may appear in any order on the wire, and repeated
// ones keep their relative order, so strings are appended as they are met.
namespace field {
constexpr int kSampleType = 1, kSample = 2, kMapping = 3, kLocation = 4,
              kFunction = 5, kStringTable = 6, kDropFrames = 7,
              kTimeNanos = 9, kDurationNanos = 10, kPeriodType = 11,
              kPeriod = 12, kComment = 13, kDefaultSampleType = 14;
namespace value_type { constexpr int kType = 1, kUnit = 2; }
namespace sample { constexpr int kLocationId = 1, kValue = 2, kLabel = 3; }
namespace label { constexpr int kKey = 1, kStr = 2, kNum = 3, kNumUnit = 4; }
namespace mapping {
constexpr int kId = 1, kMemoryStart = 2, kMemoryLimit = 3, kFileOffset = 4,
              kFilename = 5, kBuildId = 6, kHasFunctions = 7,
              kHasFilenames = 8, kHasLineNumbers = 9, kHasInlineFrames = 10;
}
namespace location { constexpr int kId = 1, kMappingId = 2, kAddress = 3, kLine = 4; }
namespace line { constexpr int kFunctionId = 1, kLine = 2, kColumn = 3; }
namespace function {
constexpr int kId = 1, kName = 2, kSystemName = 3, kFilename = 4, kStartLine = 5;
}
}  // namespace field

// Adapts the process symbolizer. Refresh() first so that libraries loaded
// since the last profile have mappings and symbols.
class SymbolizerSource final : public SymbolSource {
 public:
  explicit SymbolizerSource(Symbolizer& symbolizer) : symbolizer_(symbolizer) {
    symbolizer_.Refresh();
  }
  std::vector<MappingInfo> Mappings() override {
    return symbolizer_.Mappings();
  }
  LocationInfo Symbolize(uint64_t address) override {
    return symbolizer_.Symbolize(address);
  }

 private:
  Symbolizer& symbolizer_;
};

// Every stack entry but an exact leaf PC is a return address: it points after
// the call, possibly into the next line or function. Subtracting one puts it
// inside the call instruction. pprof's legacy parsers do this themselves; for
// protobuf input the producer must. A zero (an unwinder's end marker) stays
// zero rather than wrapping around.
uint64_t AdjustedAddress(const Stack& stack, size_t i) {
  const uint64_t pc = stack.pcs[i];
  if ((i == 0 && stack.leaf_is_pc) || pc == 0) return pc;
  return pc - 1;
}

// A sample the builder cannot place: pprof's reader would reject the whole
// profile for it, so it is dropped instead (and counted).
bool IsMalformed(const Snapshot& snapshot, const Sample& sample) {
  return sample.stack >= snapshot.stacks.size() ||
         sample.values.size() != snapshot.sample_types.size();
}

std::string MalformedComment(size_t count) {
  return "pprof-agent: dropped " + std::to_string(count) +
         " malformed samples (stack index out of range or wrong value count)";
}

const std::string& FrameName(const FrameInfo& frame) {
  return frame.name.empty() ? frame.system_name : frame.name;
}

// Builds one Profile. Ids are 1-based positions in their repeated field, so
// every id is non-zero, unique and refers to something that exists.
class ProfileBuilder {
 public:
  explicit ProfileBuilder(SymbolSource& symbols) : symbols_(symbols) {
    Str("");  // string_table[0] must be "".
  }

  std::string Build(const Snapshot& snapshot) {
    AddHeader(snapshot);
    AddMappings();
    size_t malformed = 0;
    for (const Sample& sample : snapshot.samples) {
      if (IsMalformed(snapshot, sample)) {
        ++malformed;
        continue;
      }
      AddSample(snapshot.stacks[sample.stack], sample);
    }
    std::vector<int64_t> comments;
    for (const std::string& comment : snapshot.comments) {
      comments.push_back(Str(comment));
    }
    if (malformed > 0) comments.push_back(Str(MalformedComment(malformed)));
    if (!default_type_note_.empty()) comments.push_back(Str(default_type_note_));
    out_.Packed(field::kComment, comments);
    return out_.Take();
  }

 private:
  int64_t Str(const std::string& s) {
    auto [it, inserted] = strings_.try_emplace(s, strings_.size());
    if (inserted) out_.Bytes(field::kStringTable, s);
    return it->second;
  }

  void AddValueType(int field_number, const ValueType& in) {
    WireEncoder vt;
    vt.Int64(field::value_type::kType, Str(in.type));
    vt.Int64(field::value_type::kUnit, Str(in.unit));
    out_.Message(field_number, vt);
  }

  void AddHeader(const Snapshot& snapshot) {
    for (const ValueType& type : snapshot.sample_types) {
      AddValueType(field::kSampleType, type);
    }
    if (!snapshot.period_type.type.empty() ||
        !snapshot.period_type.unit.empty()) {
      AddValueType(field::kPeriodType, snapshot.period_type);
    }
    out_.Int64(field::kPeriod, snapshot.period);
    out_.Int64(field::kTimeNanos, snapshot.time_nanos);
    out_.Int64(field::kDurationNanos, snapshot.duration_nanos);
    out_.Int64(field::kDropFrames, Str(std::string(kDropFrames)));
    if (!snapshot.default_sample_type.empty()) {
      // pprof fails to open a profile whose default type names no sample
      // type, so an unknown one is left out (pprof then uses the last type).
      const bool known =
          std::any_of(snapshot.sample_types.begin(),
                      snapshot.sample_types.end(), [&](const ValueType& t) {
                        return t.type == snapshot.default_sample_type;
                      });
      if (known) {
        out_.Int64(field::kDefaultSampleType, Str(snapshot.default_sample_type));
      } else {
        default_type_note_ = "pprof-agent: unknown default sample type '" +
                             snapshot.default_sample_type + "' left out";
      }
    }
  }

  void AddMappings() {
    mappings_ = symbols_.Mappings();
    for (size_t i = 0; i < mappings_.size(); ++i) {
      const MappingInfo& m = mappings_[i];
      namespace f = field::mapping;
      WireEncoder out;
      out.Uint64(f::kId, i + 1);
      out.Uint64(f::kMemoryStart, m.start);
      out.Uint64(f::kMemoryLimit, m.limit);
      out.Uint64(f::kFileOffset, m.offset);
      out.Int64(f::kFilename, Str(m.path));
      out.Int64(f::kBuildId, Str(m.build_id));
      out.Bool(f::kHasFunctions, m.has_functions);
      out.Bool(f::kHasFilenames, m.has_filenames);
      out.Bool(f::kHasLineNumbers, m.has_line_numbers);
      out.Bool(f::kHasInlineFrames, m.has_inline_frames);
      out_.Message(field::kMapping, out);
    }
  }

  // The symbolizer's mapping index when it agrees with the address; else the
  // first of our mappings that holds the address (the symbolizer's list may
  // have grown since Mappings() was called); else 0, which pprof accepts.
  uint64_t MappingId(const LocationInfo& info, uint64_t address) const {
    auto holds = [address](const MappingInfo& m) {
      return m.start <= address && address < m.limit;
    };
    if (info.mapping >= 0 &&
        static_cast<size_t>(info.mapping) < mappings_.size() &&
        holds(mappings_[info.mapping])) {
      return static_cast<uint64_t>(info.mapping) + 1;
    }
    for (size_t i = 0; i < mappings_.size(); ++i) {
      if (holds(mappings_[i])) return i + 1;
    }
    return 0;
  }

  // Functions are shared by all locations in them; keyed by interned strings.
  uint64_t FunctionId(const FrameInfo& frame) {
    const std::array<int64_t, 4> key = {Str(FrameName(frame)),
                                        Str(frame.system_name), Str(frame.file),
                                        frame.start_line};
    auto [it, inserted] = functions_.try_emplace(key, functions_.size() + 1);
    if (inserted) {
      namespace f = field::function;
      WireEncoder fn;
      fn.Uint64(f::kId, it->second);
      fn.Int64(f::kName, key[0]);
      fn.Int64(f::kSystemName, key[1]);
      fn.Int64(f::kFilename, key[2]);
      fn.Int64(f::kStartLine, frame.start_line);
      out_.Message(field::kFunction, fn);
    }
    return it->second;
  }

  // One location per distinct adjusted address, symbolized once.
  uint64_t LocationId(uint64_t address) {
    auto [it, inserted] = locations_.try_emplace(address, locations_.size() + 1);
    if (!inserted) return it->second;
    const uint64_t id = it->second;  // `it` may not survive FunctionId()
    const LocationInfo info = symbols_.Symbolize(address);
    namespace f = field::location;
    WireEncoder loc;
    loc.Uint64(f::kId, id);
    loc.Uint64(f::kMappingId, MappingId(info, address));
    loc.Uint64(f::kAddress, address);
    // Innermost first, as pprof wants. A frame with neither name nor file
    // says nothing; leaving the location without lines lets pprof show the
    // address or symbolize it itself.
    for (const FrameInfo& frame : info.frames) {
      if (FrameName(frame).empty() && frame.file.empty()) continue;
      WireEncoder line;
      line.Uint64(field::line::kFunctionId, FunctionId(frame));
      line.Int64(field::line::kLine, frame.line);
      line.Int64(field::line::kColumn, frame.column);
      loc.Message(f::kLine, line);
    }
    out_.Message(field::kLocation, loc);
    return id;
  }

  void AddSample(const Stack& stack, const Sample& sample) {
    // Scratch buffers are members and only cleared: a large profile has tens
    // of thousands of samples, and per-sample allocations were a third of
    // the time to serve one.
    location_ids_.clear();
    for (size_t i = 0; i < stack.pcs.size(); ++i) {
      location_ids_.push_back(LocationId(AdjustedAddress(stack, i)));
    }
    WireEncoder& out = sample_scratch_;
    out.Clear();
    out.Packed(field::sample::kLocationId, location_ids_);
    out.Packed(field::sample::kValue, sample.values);
    for (const Label& label : sample.labels) {
      namespace f = field::label;
      WireEncoder& l = label_scratch_;
      l.Clear();
      l.Int64(f::kKey, Str(label.key));
      if (label.is_num) {
        l.Int64(f::kNum, label.num);
        if (!label.num_unit.empty()) l.Int64(f::kNumUnit, Str(label.num_unit));
      } else {
        l.Int64(f::kStr, Str(label.str));
      }
      out.Message(field::sample::kLabel, l);
    }
    out_.Message(field::kSample, out);
  }

  SymbolSource& symbols_;
  WireEncoder out_;
  std::vector<uint64_t> location_ids_;
  WireEncoder sample_scratch_;
  WireEncoder label_scratch_;
  std::unordered_map<std::string, int64_t> strings_;
  std::vector<MappingInfo> mappings_;
  std::unordered_map<uint64_t, uint64_t> locations_;
  std::map<std::array<int64_t, 4>, uint64_t> functions_;
  std::string default_type_note_;
};

// --- legacy text -------------------------------------------------------------

void AppendHex(std::string* out, uint64_t v) {
  char buf[24];
  // "0x%x" rather than "%#x": C prints 0 as "0", Go's %#x as "0x0".
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
  out->append(buf);
}

void AppendInt(std::string* out, int64_t v) { out->append(std::to_string(v)); }

// pprof's simplifyFunc: the name up to its first '(' that does not begin one
// of the reserved names, i.e. without the argument list.
std::string_view SimplifiedName(std::string_view name) {
  static constexpr std::string_view kReserved[] = {"(anonymous namespace)",
                                                   "operator()"};
  for (size_t pos = 0; pos < name.size(); ++pos) {
    bool reserved = false;
    for (std::string_view r : kReserved) {
      if (name.substr(pos, r.size()) == r) {
        pos += r.size() - 1;
        reserved = true;
        break;
      }
    }
    if (!reserved && name[pos] == '(') return name.substr(0, pos);
  }
  return name;
}

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_';
}

// kDropFrames, matched by hand: libstdc++'s std::regex recurses per character
// and can overflow the stack on a long demangled template name. The unit test
// checks that the two agree.
bool IsDroppedFrame(std::string_view full_name) {
  const std::string_view name = SimplifiedName(full_name);
  // (__libc_)?(malloc|...)(@.*)?
  static constexpr std::string_view kAllocEntryPoints[] = {
      "malloc",        "calloc", "realloc",  "reallocarray",
      "free",          "cfree",  "memalign", "posix_memalign",
      "aligned_alloc", "valloc", "pvalloc",
  };
  std::string_view base = name.substr(0, name.find('@'));
  if (base.starts_with("__libc_")) base.remove_prefix(7);
  for (std::string_view e : kAllocEntryPoints) {
    if (base == e) return true;
  }
  if (name.starts_with("operator new") || name.starts_with("operator delete")) {
    return true;
  }
  // (\w+ )*pprof_agent::.*
  size_t pos = 0;
  while (true) {
    if (name.substr(pos).starts_with("pprof_agent::")) return true;
    size_t end = pos;
    while (end < name.size() && IsWordChar(name[end])) ++end;
    if (end == pos || end >= name.size() || name[end] != ' ') return false;
    pos = end + 1;
  }
}

// Symbolizes each distinct adjusted address once per text.
class FrameCache {
 public:
  explicit FrameCache(SymbolSource& symbols) : symbols_(symbols) {}
  const std::vector<FrameInfo>& Frames(uint64_t address) {
    auto it = cache_.find(address);
    if (it == cache_.end()) {
      it = cache_.emplace(address, symbols_.Symbolize(address).frames).first;
    }
    return it->second;
  }

 private:
  SymbolSource& symbols_;
  std::unordered_map<uint64_t, std::vector<FrameInfo>> cache_;
};

void AppendAddresses(const Stack& stack, std::string* out) {
  out->append(" @");
  for (uint64_t pc : stack.pcs) {
    out->push_back(' ');
    AppendHex(out, pc);
  }
  out->push_back('\n');
}

// Go's printStackRecord: "#\t<pc>\t<fn>+<off>\t<file>:<line>" per frame,
// inlined frames innermost first, then a blank line. We do not know function
// entry points, so "+<off>" is left out, and so is "\t<file>:<line>" when the
// file is unknown. As Go hides leading runtime.* frames of an allocation, we
// hide leading drop_frames frames (operator new, malloc), unless that would
// hide everything. Go aligns columns with a tabwriter; single tabs carry the
// same fields and pprof skips these lines anyway.
void AppendStackRecord(const Stack& stack, bool all_frames, FrameCache& cache,
                       std::string* out) {
  const size_t start = out->size();
  bool show = all_frames;
  for (size_t i = 0; i < stack.pcs.size(); ++i) {
    const uint64_t pc = stack.pcs[i];
    const std::vector<FrameInfo>& frames =
        cache.Frames(AdjustedAddress(stack, i));
    bool printed_any = false;
    for (const FrameInfo& frame : frames) {
      const std::string& name = FrameName(frame);
      if (name.empty()) continue;
      printed_any = true;
      if (!show && IsDroppedFrame(name)) continue;
      show = true;
      out->append("#\t");
      AppendHex(out, pc);
      out->push_back('\t');
      out->append(name);
      if (!frame.file.empty()) {
        out->push_back('\t');
        out->append(frame.file);
        out->push_back(':');
        AppendInt(out, frame.line);
      }
      out->push_back('\n');
    }
    if (!printed_any) {
      show = true;
      out->append("#\t");
      AppendHex(out, pc);
      out->push_back('\n');
    }
  }
  if (!show) {
    out->resize(start);
    AppendStackRecord(stack, /*all_frames=*/true, cache, out);
    return;
  }
  out->push_back('\n');
}

// Go prints no comments; ours carry drop counters, so they follow the records
// as "# " lines (pprof's legacy parser skips them), one line each.
void AppendComments(const std::vector<std::string>& comments,
                    std::string* out) {
  if (comments.empty()) return;
  out->push_back('\n');
  for (const std::string& comment : comments) {
    out->append("# ");
    for (char c : comment) out->push_back(c == '\n' || c == '\r' ? ' ' : c);
    out->push_back('\n');
  }
}

// Puts the truncation line first among the closing comments, where a
// reader of a cut text looks.
void NoteTruncation(size_t max_bytes, size_t written, size_t total,
                    std::string_view records,
                    std::vector<std::string>* comments) {
  if (written >= total) return;
  comments->insert(
      comments->begin(),
      TruncationComment(max_bytes, total - written, total, records));
}

int FindType(const Snapshot& snapshot, std::string_view type) {
  for (size_t i = 0; i < snapshot.sample_types.size(); ++i) {
    if (snapshot.sample_types[i].type == type) return static_cast<int>(i);
  }
  return -1;
}

struct HeapRecord {
  int64_t inuse_objects = 0;
  int64_t inuse_bytes = 0;
  int64_t alloc_objects = 0;
  int64_t alloc_bytes = 0;
  const Stack* stack = nullptr;
};

// Our heap values are scaled (each sample stands for 1/(1-exp(-size/rate))
// allocations), as in the proto. Go's debug=1 text prints raw sample counts
// and pprof scales them on reading, with the rate from the header and the
// average object size. So undo our scaling, using the `bytes` label (the
// exact allocation size) when present, else the average size.
void UnscaleHeapRecord(const Sample& sample, int64_t rate, HeapRecord* r) {
  if (rate <= 1) return;  // Every allocation recorded: nothing was scaled.
  double size = 0;
  for (const Label& label : sample.labels) {
    if (label.is_num && label.key == "bytes" && label.num > 0) {
      size = static_cast<double>(label.num);
    }
  }
  if (size <= 0 && r->alloc_objects > 0) {
    size = static_cast<double>(r->alloc_bytes) / r->alloc_objects;
  }
  if (size <= 0 && r->inuse_objects > 0) {
    size = static_cast<double>(r->inuse_bytes) / r->inuse_objects;
  }
  if (!(size > 0)) return;
  const double keep = -std::expm1(-size / static_cast<double>(rate));
  auto unscale = [keep](int64_t v) {
    const double x = std::round(static_cast<double>(v) * keep);
    // Clamp so that a hostile value cannot make the conversion undefined.
    if (!(x > -9.2e18)) return INT64_C(0);
    return x < 9.2e18 ? static_cast<int64_t>(x) : INT64_MAX;
  };
  r->inuse_objects = unscale(r->inuse_objects);
  r->inuse_bytes = unscale(r->inuse_bytes);
  r->alloc_objects = unscale(r->alloc_objects);
  r->alloc_bytes = unscale(r->alloc_bytes);
}

// Go's writeHeapInternal (runtime/pprof, debug=1), record for record.
std::string HeapText(const Snapshot& snapshot, int alloc_objects_i,
                     int alloc_space_i, int inuse_objects_i, int inuse_space_i,
                     SymbolSource& symbols, size_t max_bytes) {
  std::vector<std::string> comments = snapshot.comments;
  std::vector<HeapRecord> records;
  size_t malformed = 0;
  for (const Sample& sample : snapshot.samples) {
    if (IsMalformed(snapshot, sample)) {
      ++malformed;
      continue;
    }
    HeapRecord r;
    r.alloc_objects = sample.values[alloc_objects_i];
    r.alloc_bytes = sample.values[alloc_space_i];
    r.inuse_objects = sample.values[inuse_objects_i];
    r.inuse_bytes = sample.values[inuse_space_i];
    r.stack = &snapshot.stacks[sample.stack];
    UnscaleHeapRecord(sample, snapshot.period, &r);
    records.push_back(r);
  }
  if (malformed > 0) comments.push_back(MalformedComment(malformed));

  // Largest in-use first, as Go printed it for a decade (Go 1.22's switch to
  // slices.SortFunc with cmp.Compare made it ascending, by all appearances
  // unintentionally; the biggest users first is what a reader wants).
  std::stable_sort(records.begin(), records.end(),
                   [](const HeapRecord& a, const HeapRecord& b) {
                     return a.inuse_bytes > b.inuse_bytes;
                   });

  // Unsigned sums: wrap-around on absurd input instead of undefined
  // behaviour (the builder is fuzzed).
  uint64_t inuse_objects = 0, inuse_bytes = 0, alloc_objects = 0,
           alloc_bytes = 0;
  for (const HeapRecord& r : records) {
    inuse_objects += static_cast<uint64_t>(r.inuse_objects);
    inuse_bytes += static_cast<uint64_t>(r.inuse_bytes);
    alloc_objects += static_cast<uint64_t>(r.alloc_objects);
    alloc_bytes += static_cast<uint64_t>(r.alloc_bytes);
  }
  // As Go: pprof reads a header with alloc == inuse as a 2-column profile
  // that cannot be merged with 4-column ones, so alloc bytes are nudged.
  if (inuse_bytes == alloc_bytes) ++alloc_bytes;
  // As Go: "Technically the rate is MemProfileRate not 2*MemProfileRate, but
  // early versions of the C++ heap profiler reported 2*MemProfileRate, so
  // that's what pprof has come to expect": pprof halves it for "heap/".
  const uint64_t rate = 2 * static_cast<uint64_t>(snapshot.period);

  std::string out;
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "heap profile: %" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64
                "] @ heap/%" PRId64 "\n",
                static_cast<int64_t>(inuse_objects),
                static_cast<int64_t>(inuse_bytes),
                static_cast<int64_t>(alloc_objects),
                static_cast<int64_t>(alloc_bytes), static_cast<int64_t>(rate));
  out.append(buf);
  FrameCache cache(symbols);
  size_t written = 0;
  for (const HeapRecord& r : records) {
    if (!TextHasRoom(&out, max_bytes)) break;
    ++written;
    std::snprintf(
        buf, sizeof(buf), "%" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64 "]",
        r.inuse_objects, r.inuse_bytes, r.alloc_objects, r.alloc_bytes);
    out.append(buf);
    AppendAddresses(*r.stack, &out);
    AppendStackRecord(*r.stack, /*all_frames=*/false, cache, &out);
  }
  NoteTruncation(max_bytes, written, records.size(), "records", &comments);
  AppendComments(comments, &out);
  return out;
}

// Any other profile: a header naming the sample types and period, then one
// record per sample in the heap form ("v1 v2 ... @ addresses" and frames).
std::string GenericText(const Snapshot& snapshot, SymbolSource& symbols,
                        size_t max_bytes) {
  std::vector<std::string> comments = snapshot.comments;
  std::string out = "profile:";
  for (const ValueType& t : snapshot.sample_types) {
    out.append(" " + t.type + "/" + t.unit);
  }
  out.append(" @ " + snapshot.period_type.type + "/" +
             snapshot.period_type.unit + " ");
  AppendInt(&out, snapshot.period);
  out.push_back('\n');
  FrameCache cache(symbols);
  size_t malformed = 0, written = 0, left_out = 0;
  for (const Sample& sample : snapshot.samples) {
    if (IsMalformed(snapshot, sample)) {
      ++malformed;
      continue;
    }
    if (left_out > 0 || !TextHasRoom(&out, max_bytes)) {
      ++left_out;
      continue;
    }
    ++written;
    for (size_t i = 0; i < sample.values.size(); ++i) {
      if (i > 0) out.push_back(' ');
      AppendInt(&out, sample.values[i]);
    }
    const Stack& stack = snapshot.stacks[sample.stack];
    AppendAddresses(stack, &out);
    // The leaf matters here (a CPU sample in malloc is real CPU time), so
    // nothing is hidden, as in Go's mutex and block texts.
    AppendStackRecord(stack, /*all_frames=*/true, cache, &out);
  }
  if (malformed > 0) comments.push_back(MalformedComment(malformed));
  NoteTruncation(max_bytes, written, written + left_out, "records", &comments);
  AppendComments(comments, &out);
  return out;
}

}  // namespace

bool TextHasRoom(std::string* out, size_t max_bytes) {
  if (out->size() >= max_bytes) return false;
  // Room for the record that crosses the limit and the closing comments;
  // a bigger record still fits, at the cost of one reallocation.
  constexpr size_t kSlack = size_t{1} << 20;
  if (out->size() >= kTextReserveAfterBytes &&
      out->capacity() < max_bytes + kSlack) {
    out->reserve(max_bytes + kSlack);
  }
  return true;
}

std::string TruncationComment(size_t limit, size_t left_out, size_t total,
                              std::string_view records) {
  std::string line = "pprof-agent: text truncated at " + std::to_string(limit) +
                     " bytes: " + std::to_string(left_out) + " of " +
                     std::to_string(total) + " ";
  line.append(records);
  line.append(" left out (debug=0 has them all)");
  return line;
}

std::string BuildProfileProto(const Snapshot& snapshot, SymbolSource& symbols) {
  return ProfileBuilder(symbols).Build(snapshot);
}

std::string BuildProfileProto(const Snapshot& snapshot, Symbolizer& symbols) {
  SymbolizerSource source(symbols);
  return BuildProfileProto(snapshot, source);
}

std::string BuildProfileGzip(const Snapshot& snapshot, SymbolSource& symbols) {
  return Gzip(BuildProfileProto(snapshot, symbols));
}

std::string BuildProfileGzip(const Snapshot& snapshot, Symbolizer& symbols) {
  return Gzip(BuildProfileProto(snapshot, symbols));
}

std::string Gzip(const std::string& data) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip wrapper (header and CRC trailer), which is
  // what pprof and `gunzip` expect. Level 1: profiles are served on request
  // and compress well anyway; speed matters more than the last few percent.
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return "";
  }
  // zlib counts in 32-bit uInt; feed and drain in chunks it can describe.
  constexpr size_t kChunk = size_t{1} << 30;
  std::string out(std::max<size_t>(deflateBound(&zs, data.size()), 64), '\0');
  size_t out_len = 0;
  size_t in_left = data.size();
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (zs.avail_in == 0 && in_left > 0) {
      zs.avail_in = static_cast<uInt>(std::min(in_left, kChunk));
      in_left -= zs.avail_in;
    }
    if (out_len == out.size()) out.resize(out.size() * 2);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_len);
    zs.avail_out = static_cast<uInt>(std::min(out.size() - out_len, kChunk));
    const uInt avail_before = zs.avail_out;
    rc = deflate(&zs, in_left == 0 ? Z_FINISH : Z_NO_FLUSH);
    out_len += avail_before - zs.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      deflateEnd(&zs);
      return "";
    }
  }
  deflateEnd(&zs);
  out.resize(out_len);
  return out;
}

std::string LegacyHeapText(const Snapshot& snapshot, SymbolSource& symbols,
                           size_t max_bytes) {
  const int alloc_objects = FindType(snapshot, "alloc_objects");
  const int alloc_space = FindType(snapshot, "alloc_space");
  const int inuse_objects = FindType(snapshot, "inuse_objects");
  const int inuse_space = FindType(snapshot, "inuse_space");
  if (alloc_objects < 0 || alloc_space < 0 || inuse_objects < 0 ||
      inuse_space < 0) {
    return GenericText(snapshot, symbols, max_bytes);
  }
  return HeapText(snapshot, alloc_objects, alloc_space, inuse_objects,
                  inuse_space, symbols, max_bytes);
}

std::string LegacyHeapText(const Snapshot& snapshot, Symbolizer& symbols) {
  SymbolizerSource source(symbols);
  return LegacyHeapText(snapshot, source);
}

std::string LegacyContentionText(const Snapshot& snapshot,
                                 std::string_view name, int64_t sampling_period,
                                 SymbolSource& symbols, size_t max_bytes) {
  const int contentions = FindType(snapshot, "contentions");
  const int delay = FindType(snapshot, "delay");
  if (contentions < 0 || delay < 0) {
    return GenericText(snapshot, symbols, max_bytes);
  }
  std::vector<std::string> comments = snapshot.comments;
  struct Row {
    int64_t delay;
    int64_t count;
    const Stack* stack;
  };
  std::vector<Row> rows;
  size_t malformed = 0;
  for (const Sample& sample : snapshot.samples) {
    if (IsMalformed(snapshot, sample)) {
      ++malformed;
      continue;
    }
    rows.push_back({sample.values[delay], sample.values[contentions],
                    &snapshot.stacks[sample.stack]});
  }
  if (malformed > 0) comments.push_back(MalformedComment(malformed));
  // Go sorts by cycles, largest first.
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.delay > b.delay;
  });
  std::string out = "--- ";
  out.append(name);
  out.append(":\ncycles/second=1000000000\n");
  if (name == "mutex") {
    out.append("sampling period=");
    AppendInt(&out, sampling_period);
    out.push_back('\n');
  }
  FrameCache cache(symbols);
  size_t written = 0;
  for (const Row& row : rows) {
    if (!TextHasRoom(&out, max_bytes)) break;
    ++written;
    AppendInt(&out, row.delay);
    out.push_back(' ');
    AppendInt(&out, row.count);
    AppendAddresses(*row.stack, &out);
    // Go prints every frame of a contention record (printStackRecord with
    // allFrames): the lock call itself is the point.
    AppendStackRecord(*row.stack, /*all_frames=*/true, cache, &out);
  }
  NoteTruncation(max_bytes, written, rows.size(), "records", &comments);
  AppendComments(comments, &out);
  return out;
}

std::string LegacyContentionText(const Snapshot& snapshot,
                                 std::string_view name,
                                 int64_t sampling_period,
                                 Symbolizer& symbols) {
  SymbolizerSource source(symbols);
  return LegacyContentionText(snapshot, name, sampling_period, source);
}

// Counts come from a snapshot a caller may have built from anything (the
// fuzzer does): sums wrap, as Go's int64 sums do, rather than overflow.
namespace {
void AddCount(int64_t* sum, int64_t value) {
  *sum = static_cast<int64_t>(static_cast<uint64_t>(*sum) + static_cast<uint64_t>(value));
}
}  // namespace

std::string LegacyCountProfileText(const Snapshot& snapshot,
                                   std::string_view name, SymbolSource& symbols,
                                   size_t max_bytes) {
  std::vector<std::string> comments = snapshot.comments;
  struct Group {
    int64_t count = 0;
    const Stack* stack = nullptr;
    std::map<std::string, int64_t> names;
  };
  std::map<std::vector<uint64_t>, Group> groups;
  std::map<std::string, int64_t> missing;  // reason -> threads
  int64_t total = 0;
  size_t malformed = 0;
  for (const Sample& sample : snapshot.samples) {
    if (IsMalformed(snapshot, sample) || sample.values.empty()) {
      ++malformed;
      continue;
    }
    const int64_t count = sample.values[0];
    AddCount(&total, count);
    const Stack& stack = snapshot.stacks[sample.stack];
    std::string thread_name, missing_reason;
    for (const Label& label : sample.labels) {
      if (label.is_num) continue;
      if (label.key == "thread_name") thread_name = label.str;
      if (label.key == "stack_missing") missing_reason = label.str;
    }
    if (stack.pcs.empty()) {
      AddCount(&missing[missing_reason.empty() ? "no stack" : missing_reason], count);
      continue;
    }
    Group& group = groups[stack.pcs];
    AddCount(&group.count, count);
    group.stack = &stack;
    if (!thread_name.empty()) AddCount(&group.names[thread_name], count);
  }
  if (malformed > 0) comments.push_back(MalformedComment(malformed));
  for (const auto& [reason, count] : missing) {
    comments.push_back(std::to_string(count) + " without a stack: " + reason);
  }
  std::vector<const Group*> order;
  for (const auto& [pcs, group] : groups) order.push_back(&group);
  // Go sorts by count, largest first; ties keep the stacks' order.
  std::stable_sort(order.begin(), order.end(), [](const Group* a, const Group* b) {
    return a->count > b->count;
  });
  std::string out(name);
  out.append(" profile: total ");
  AppendInt(&out, total);
  out.push_back('\n');
  FrameCache cache(symbols);
  size_t written = 0;
  for (const Group* group : order) {
    if (!TextHasRoom(&out, max_bytes)) break;
    ++written;
    AppendInt(&out, group->count);
    AppendAddresses(*group->stack, &out);
    if (!group->names.empty()) {
      // Most frequent names first, at most ten.
      std::vector<std::pair<std::string, int64_t>> names(group->names.begin(),
                                                         group->names.end());
      std::stable_sort(names.begin(), names.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      out.append("# threads:");
      for (size_t i = 0; i < names.size() && i < 10; ++i) {
        out.append(i == 0 ? " " : ", ");
        out.append(names[i].first);
        if (names[i].second > 1) {
          out.append(" x");
          AppendInt(&out, names[i].second);
        }
      }
      if (names.size() > 10) {
        out.append(", ... (");
        AppendInt(&out, static_cast<int64_t>(names.size() - 10));
        out.append(" more names)");
      }
      out.push_back('\n');
    }
    AppendStackRecord(*group->stack, /*all_frames=*/false, cache, &out);
  }
  NoteTruncation(max_bytes, written, order.size(), "records", &comments);
  AppendComments(comments, &out);
  return out;
}

std::string LegacyCountProfileText(const Snapshot& snapshot,
                                   std::string_view name,
                                   Symbolizer& symbols) {
  SymbolizerSource source(symbols);
  return LegacyCountProfileText(snapshot, name, source);
}

}  // namespace pprof_agent::internal
