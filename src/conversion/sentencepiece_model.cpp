#include "conversion/sentencepiece_model.h"

#include <cstring>

#include "errors.h"

namespace bitnet {
namespace {

enum Wire { Varint = 0, Fixed64 = 1, Len = 2, Fixed32 = 5 };

class ProtoReader {
 public:
  ProtoReader(std::span<const uint8_t> b, const std::string& name, size_t base)
      : b_(b), name_(name), base_(base) {}
  bool done() const { return pos_ >= b_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) fail("truncated varint");
      const uint8_t byte = b_[pos_++];
      v |= uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  // Reads a field key; returns the field number and sets the wire type.
  uint32_t key(int& wire) {
    const uint64_t k = varint();
    wire = int(k & 7);
    if ((k >> 3) == 0 || (k >> 3) > 0x1fffffff) fail("invalid field number");
    return uint32_t(k >> 3);
  }
  std::span<const uint8_t> bytes(size_t& offset) {
    const uint64_t n = varint();
    if (n > b_.size() - pos_) fail("length " + std::to_string(n) + " runs past the end");
    offset = base_ + pos_;
    auto out = b_.subspan(pos_, size_t(n));
    pos_ += size_t(n);
    return out;
  }
  float fixed32() {
    if (b_.size() - pos_ < 4) fail("truncated fixed32");
    float f;
    std::memcpy(&f, b_.data() + pos_, 4);
    pos_ += 4;
    return f;
  }
  void skip(int wire) {
    size_t ignored;
    switch (wire) {
      case Varint: varint(); return;
      case Fixed64:
        if (b_.size() - pos_ < 8) fail("truncated fixed64");
        pos_ += 8;
        return;
      case Len: bytes(ignored); return;
      case Fixed32: fixed32(); return;
      default: fail("unsupported wire type " + std::to_string(wire));
    }
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw FormatError(name_ + ": malformed SentencePiece model at byte " + std::to_string(base_ + pos_) +
                      ": " + why);
  }
  void expect(int wire, int want, const char* field) const {
    if (wire != want) fail(std::string("field ") + field + " has the wrong wire type");
  }

 private:
  std::span<const uint8_t> b_;
  const std::string& name_;
  size_t base_;
  size_t pos_ = 0;
};

SpmPiece parse_piece(std::span<const uint8_t> b, const std::string& name, size_t base) {
  ProtoReader r(b, name, base);
  SpmPiece p;
  while (!r.done()) {
    int wire;
    const uint32_t f = r.key(wire);
    size_t off;
    if (f == 1) {
      r.expect(wire, Len, "piece");
      const auto s = r.bytes(off);
      p.piece.assign(s.begin(), s.end());
    } else if (f == 2) {
      r.expect(wire, Fixed32, "score");
      p.score = r.fixed32();
    } else if (f == 3) {
      r.expect(wire, Varint, "type");
      p.type = int32_t(r.varint());
      if (p.type < 1 || p.type > 6) r.fail("piece type " + std::to_string(p.type) + " is not 1..6");
    } else {
      r.skip(wire);
    }
  }
  return p;
}

void parse_trainer(std::span<const uint8_t> b, const std::string& name, size_t base, SpmModel& m) {
  ProtoReader r(b, name, base);
  while (!r.done()) {
    int wire;
    const uint32_t f = r.key(wire);
    if (wire == Varint && (f == 3 || f == 35 || (f >= 40 && f <= 43))) {
      const auto v = int32_t(r.varint());  // ids are int32 in the proto (pad_id -1 = none)
      if (f == 3) m.model_type = v;
      else if (f == 35) m.byte_fallback = v != 0;
      else if (f == 40) m.unk_id = v;
      else if (f == 41) m.bos_id = v;
      else if (f == 42) m.eos_id = v;
      else m.pad_id = v;
    } else {
      r.skip(wire);
    }
  }
}

void parse_normalizer(std::span<const uint8_t> b, const std::string& name, size_t base, SpmModel& m) {
  ProtoReader r(b, name, base);
  while (!r.done()) {
    int wire;
    const uint32_t f = r.key(wire);
    if (wire == Varint && (f == 3 || f == 4)) {
      const bool v = r.varint() != 0;
      (f == 3 ? m.add_dummy_prefix : m.remove_extra_whitespaces) = v;
    } else {
      r.skip(wire);
    }
  }
}

// ---- writer ----------------------------------------------------------------------------------
void put_varint(std::vector<uint8_t>& o, uint64_t v) {
  while (v >= 0x80) {
    o.push_back(uint8_t(v | 0x80));
    v >>= 7;
  }
  o.push_back(uint8_t(v));
}
void put_key(std::vector<uint8_t>& o, uint32_t field, int wire) { put_varint(o, uint64_t(field) << 3 | uint64_t(wire)); }
void put_len(std::vector<uint8_t>& o, uint32_t field, const std::vector<uint8_t>& payload) {
  put_key(o, field, Len);
  put_varint(o, payload.size());
  o.insert(o.end(), payload.begin(), payload.end());
}
void put_int(std::vector<uint8_t>& o, uint32_t field, int64_t v) {
  put_key(o, field, Varint);
  put_varint(o, uint64_t(v));  // negative int32 → 10-byte two's complement, as protobuf does
}

}  // namespace

SpmModel parse_sentencepiece_model(std::span<const uint8_t> bytes, const std::string& name) {
  SpmModel m;
  ProtoReader r(bytes, name, 0);
  while (!r.done()) {
    int wire;
    const uint32_t f = r.key(wire);
    size_t off;
    if (f >= 1 && f <= 3) {
      r.expect(wire, Len, f == 1 ? "pieces" : f == 2 ? "trainer_spec" : "normalizer_spec");
      const auto sub = r.bytes(off);
      if (f == 1) m.pieces.push_back(parse_piece(sub, name, off));
      else if (f == 2) parse_trainer(sub, name, off, m);
      else parse_normalizer(sub, name, off, m);
    } else {
      r.skip(wire);
    }
  }
  if (m.pieces.empty()) throw FormatError(name + ": SentencePiece model has no pieces");
  return m;
}

std::vector<uint8_t> serialize_sentencepiece_model(const SpmModel& m) {
  std::vector<uint8_t> out;
  for (const SpmPiece& p : m.pieces) {
    std::vector<uint8_t> sub;
    put_len(sub, 1, std::vector<uint8_t>(p.piece.begin(), p.piece.end()));
    put_key(sub, 2, Fixed32);
    uint8_t f[4];
    std::memcpy(f, &p.score, 4);
    sub.insert(sub.end(), f, f + 4);
    put_int(sub, 3, p.type);
    put_len(out, 1, sub);
  }
  std::vector<uint8_t> trainer;
  put_int(trainer, 3, m.model_type);
  put_int(trainer, 35, m.byte_fallback);
  put_int(trainer, 40, m.unk_id);
  put_int(trainer, 41, m.bos_id);
  put_int(trainer, 42, m.eos_id);
  put_int(trainer, 43, m.pad_id);
  put_len(out, 2, trainer);
  std::vector<uint8_t> norm;
  put_int(norm, 3, m.add_dummy_prefix);
  put_int(norm, 4, m.remove_extra_whitespaces);
  put_len(out, 3, norm);
  return out;
}

}  // namespace bitnet
