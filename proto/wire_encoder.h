// A minimal protobuf wire-format writer for profile.proto, in the spirit of
// Go's runtime/pprof/protobuf.go. The agent serialises profiles with it
// instead of linking libprotobuf: a service that links its own (possibly
// different) protobuf can never clash with us, and Debian's static
// libprotobuf-lite cannot go into a shared object anyway (local-exec TLS).
// The tests decode our bytes with the real protobuf library generated from
// profile.proto, and with `go tool pprof`, to prove the encoding.
#ifndef PPROF_AGENT_PROTO_WIRE_ENCODER_H_
#define PPROF_AGENT_PROTO_WIRE_ENCODER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pprof_agent::internal {

class WireEncoder {
 public:
  // Field writers follow proto3: a scalar equal to zero is not written.
  void Uint64(int field, uint64_t v) {
    if (v == 0) return;
    Tag(field, 0);
    Varint(v);
  }
  void Int64(int field, int64_t v) { Uint64(field, static_cast<uint64_t>(v)); }
  void Bool(int field, bool v) { Uint64(field, v ? 1 : 0); }
  // Strings and bytes are always written (repeated string_table needs "").
  void Bytes(int field, std::string_view v) {
    Tag(field, 2);
    Varint(v.size());
    out_.append(v.data(), v.size());
  }
  // Packed repeated varints (written only when non-empty).
  template <typename T>
  void Packed(int field, const std::vector<T>& values) {
    if (values.empty()) return;
    size_t length = 0;
    for (T v : values) length += VarintSize(static_cast<uint64_t>(v));
    Tag(field, 2);
    Varint(length);
    for (T v : values) Varint(static_cast<uint64_t>(v));
  }
  // An embedded message: everything `nested` wrote, length-delimited.
  void Message(int field, const WireEncoder& nested) {
    Bytes(field, nested.out_);
  }

  const std::string& bytes() const { return out_; }
  std::string Take() { return std::move(out_); }
  void Clear() { out_.clear(); }

 private:
  void Tag(int field, int wire_type) {
    Varint((static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire_type));
  }
  static size_t VarintSize(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      ++n;
    }
    return n;
  }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }

  std::string out_;
};

}  // namespace pprof_agent::internal

#endif  // PPROF_AGENT_PROTO_WIRE_ENCODER_H_
