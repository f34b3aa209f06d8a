// GGUF parser: turns an untrusted byte image into validated metadata and tensor infos.
// Every read goes through a bounds-checked cursor; every count is checked against the bytes that
// remain before anything is allocated for it (shared/spec/gguf.md §9, §10).
#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>

#include "formats/gguf_common.h"

namespace bitnet::gguf_detail {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader decodes little-endian values with memcpy");

// Smallest possible encodings, used to bound counts before allocating:
// a KV is key length (8) + value type (4) + at least one payload byte;
// a tensor info is name length (8) + n_dims (4) + one ne (8) + type (4) + offset (8).
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
// Real models carry a few dozen metadata entries (a vocabulary is one array entry): a file with
// millions of them (tiny ones still fit the byte bound above) cost 1.8 GB and 10 s to list.
constexpr uint64_t kMaxKvCount = 65536;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

std::string str(uint64_t v) { return std::to_string(v); }

class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  uint64_t pos() const { return pos_; }
  uint64_t size() const { return bytes_.size(); }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  // What is being parsed ("header", "metadata entry #3 ('x')"); used in truncation messages.
  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  [[noreturn]] void fail(const std::string& msg) const { throw FormatError(name_ + ": " + msg); }

  const uint8_t* take(uint64_t n, const char* field) {
    if (n > remaining()) {
      fail("file truncated in " + context_ + ": need " + str(n) + " bytes for " + field +
           " at offset " + str(pos_) + ", only " + str(remaining()) + " left");
    }
    const uint8_t* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }

  template <class T>
  T read(const char* field) {
    T v;
    std::memcpy(&v, take(sizeof(T), field), sizeof(T));
    return v;
  }

  std::string read_string(const char* field) {
    const uint64_t n = read<uint64_t>(field);
    // Checked separately from take() so a huge length gets its own message (spec §10 class 6).
    if (n > remaining()) {
      fail(context_ + ": " + field + " length " + str(n) + " exceeds the remaining " +
           str(remaining()) + " bytes of the file");
    }
    const uint8_t* p = take(n, field);
    return std::string(reinterpret_cast<const char*>(p), size_t(n));
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& name_;
  uint64_t pos_ = 0;
  std::string context_ = "header";
};

class Parser {
 public:
  Parser(std::span<const uint8_t> bytes, const std::string& name) : cur_(bytes, name) {}

  ParsedGguf run() {
    parse_header();
    parse_kvs();
    parse_tensor_infos();
    place_tensors();
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { cur_.fail(msg); }

  void parse_header();
  void parse_kvs();
  GgufValue parse_value(GgufValueType type, const std::string& key);
  GgufArray parse_array(const std::string& key);
  void check_alignment_kv(const GgufValue& v);
  void parse_tensor_infos();
  GgufTensorInfo parse_tensor_info(uint64_t index);
  void parse_shape(GgufTensorInfo& t, const std::string& qname);
  void compute_nbytes(GgufTensorInfo& t, const std::string& qname);
  void place_tensors();

  Cursor cur_;
  ParsedGguf out_;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
};

void Parser::parse_header() {
  const uint64_t size = cur_.size();
  if (size == 0) fail("empty file (0 bytes), not a GGUF file");
  if (size >= 4 && std::memcmp(cur_.take(4, "magic"), kMagic, 4) != 0) {
    fail("bad magic: not a GGUF file (the first 4 bytes are not \"GGUF\")");
  }
  if (size < kHeaderSize) {
    fail("truncated header: file is " + str(size) + " bytes, a GGUF header needs " +
         str(kHeaderSize));
  }
  const uint32_t version = cur_.read<uint32_t>("version");
  if (version == 0) fail("unsupported GGUF version 0");
  // A byte-swapped file has its small version number in the high 16 bits.
  if ((version & 0xffff) == 0) {
    fail("big-endian GGUF file (version field reads " + str(version) +
         "); only little-endian files are supported");
  }
  if (version == 1) fail("GGUF version 1 (32-bit counts) is not supported; convert to version 3");
  if (version != 2 && version != 3) {
    fail("unsupported GGUF version " + str(version) + " (supported: 2 and 3)");
  }
  out_.version = version;
  n_tensors_ = cur_.read<uint64_t>("tensor_count");
  n_kv_ = cur_.read<uint64_t>("kv_count");
  // Reject absurd counts before reserving anything for them.
  const uint64_t rest = cur_.remaining();
  if (n_kv_ > rest / kMinKvBytes) {
    fail("kv_count " + str(n_kv_) + " is larger than the " + str(rest) +
         " remaining bytes could hold");
  }
  if (n_kv_ > kMaxKvCount) fail("kv_count " + str(n_kv_) + " is above the limit of " + str(kMaxKvCount) + " metadata entries");
  if (n_tensors_ > rest / kMinTensorInfoBytes) {
    fail("tensor_count " + str(n_tensors_) + " is larger than the " + str(rest) +
         " remaining bytes could hold");
  }
}

void Parser::parse_kvs() {
  out_.kvs.reserve(size_t(n_kv_));
  for (uint64_t i = 0; i < n_kv_; ++i) {
    const std::string entry = "metadata entry #" + str(i);
    cur_.set_context(entry);
    std::string key = cur_.read_string("key");
    if (key.empty()) fail(entry + " has an empty key");
    const std::string qkey = quote(key);
    cur_.set_context(entry + " (" + qkey + ")");
    if (out_.key_index.count(key)) fail("duplicate key " + qkey + " (" + entry + ")");
    const uint32_t tag = cur_.read<uint32_t>("value type");
    if (!is_valid_value_type(tag)) {
      fail("key " + qkey + ": unknown value type " + str(tag));
    }
    GgufValue value = parse_value(GgufValueType(tag), qkey);
    if (key == kAlignmentKey) check_alignment_kv(value);
    out_.key_index.emplace(key, out_.kvs.size());
    out_.kvs.push_back(GgufKV{std::move(key), std::move(value)});
  }
}

GgufValue Parser::parse_value(GgufValueType type, const std::string& qkey) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::UINT8: v.value = uint64_t(cur_.read<uint8_t>("UINT8 value")); break;
    case GgufValueType::UINT16: v.value = uint64_t(cur_.read<uint16_t>("UINT16 value")); break;
    case GgufValueType::UINT32: v.value = uint64_t(cur_.read<uint32_t>("UINT32 value")); break;
    case GgufValueType::UINT64: v.value = cur_.read<uint64_t>("UINT64 value"); break;
    case GgufValueType::INT8: v.value = int64_t(cur_.read<int8_t>("INT8 value")); break;
    case GgufValueType::INT16: v.value = int64_t(cur_.read<int16_t>("INT16 value")); break;
    case GgufValueType::INT32: v.value = int64_t(cur_.read<int32_t>("INT32 value")); break;
    case GgufValueType::INT64: v.value = cur_.read<int64_t>("INT64 value"); break;
    case GgufValueType::FLOAT32: v.value = double(cur_.read<float>("FLOAT32 value")); break;
    case GgufValueType::FLOAT64: v.value = cur_.read<double>("FLOAT64 value"); break;
    case GgufValueType::BOOL: {
      const uint8_t b = cur_.read<uint8_t>("BOOL value");
      if (b > 1) fail("key " + qkey + ": invalid BOOL value " + str(b) + " (must be 0 or 1)");
      v.value = b == 1;
      break;
    }
    case GgufValueType::STRING: v.value = cur_.read_string("string value"); break;
    case GgufValueType::ARRAY: v.value = parse_array(qkey); break;
  }
  return v;
}

// Decodes `n` packed little-endian elements of type T into `dst` (already bounds-checked).
template <class T, class D>
void decode_dense(const uint8_t* p, uint64_t n, std::vector<D>& dst) {
  dst.resize(size_t(n));
  for (uint64_t j = 0; j < n; ++j) {
    T x;
    std::memcpy(&x, p + j * sizeof(T), sizeof(T));
    dst[size_t(j)] = D(x);
  }
}

GgufArray Parser::parse_array(const std::string& qkey) {
  GgufArray a;
  const uint32_t tag = cur_.read<uint32_t>("array element type");
  if (!is_valid_value_type(tag)) {
    fail("key " + qkey + ": unknown array element type " + str(tag));
  }
  a.elem_type = GgufValueType(tag);
  if (a.elem_type == GgufValueType::ARRAY) {
    fail("key " + qkey + ": array of arrays is not supported");
  }
  const uint64_t n = cur_.read<uint64_t>("array count");
  // Strings need at least their 8-byte length each.
  const uint64_t elem_min = a.elem_type == GgufValueType::STRING ? 8 : fixed_value_size(a.elem_type);
  if (n > cur_.remaining() / elem_min) {
    fail("key " + qkey + ": array count " + str(n) + " of " +
         std::string(gguf_value_type_name(a.elem_type)) + " exceeds what the remaining " +
         str(cur_.remaining()) + " bytes can hold");
  }
  if (a.elem_type == GgufValueType::STRING) {
    a.strings.reserve(size_t(n));
    for (uint64_t j = 0; j < n; ++j) a.strings.push_back(cur_.read_string("array string"));
    return a;
  }
  const uint8_t* p = cur_.take(n * elem_min, "array data");
  switch (a.elem_type) {
    case GgufValueType::UINT8: decode_dense<uint8_t>(p, n, a.ints); break;
    case GgufValueType::INT8: decode_dense<int8_t>(p, n, a.ints); break;
    case GgufValueType::UINT16: decode_dense<uint16_t>(p, n, a.ints); break;
    case GgufValueType::INT16: decode_dense<int16_t>(p, n, a.ints); break;
    case GgufValueType::UINT32: decode_dense<uint32_t>(p, n, a.ints); break;
    case GgufValueType::INT32: decode_dense<int32_t>(p, n, a.ints); break;
    case GgufValueType::INT64: decode_dense<int64_t>(p, n, a.ints); break;
    case GgufValueType::FLOAT32: decode_dense<float>(p, n, a.floats); break;
    case GgufValueType::FLOAT64: decode_dense<double>(p, n, a.floats); break;
    case GgufValueType::UINT64: {
      // Stored as int64: values that do not fit would silently turn negative.
      std::vector<uint64_t> raw;
      decode_dense<uint64_t>(p, n, raw);
      for (uint64_t j = 0; j < n; ++j) {
        if (raw[j] > uint64_t(INT64_MAX)) {
          fail("key " + qkey + ": UINT64 array element #" + str(j) + " = " + str(raw[j]) +
               " exceeds INT64_MAX");
        }
      }
      a.ints.assign(raw.begin(), raw.end());
      break;
    }
    case GgufValueType::BOOL: {
      a.bools.resize(size_t(n));
      for (uint64_t j = 0; j < n; ++j) {
        if (p[j] > 1) {
          fail("key " + qkey + ": invalid BOOL value " + str(p[j]) + " in array element #" +
               str(j) + " (must be 0 or 1)");
        }
        a.bools[size_t(j)] = p[j] == 1;
      }
      break;
    }
    case GgufValueType::STRING:
    case GgufValueType::ARRAY: break;  // handled above
  }
  return a;
}

void Parser::check_alignment_kv(const GgufValue& v) {
  if (v.type != GgufValueType::UINT32) {
    fail("key 'general.alignment' must be UINT32, found " + describe_type(v));
  }
  const uint64_t a = std::get<uint64_t>(v.value);
  if (a == 0) fail("key 'general.alignment' is zero (must be a non-zero power of two)");
  if (!is_power_of_two(a)) fail("key 'general.alignment' = " + str(a) + " is not a power of two");
  out_.alignment = uint32_t(a);
}

void Parser::parse_tensor_infos() {
  // The header bound assumed an empty KV section; re-check with what is really left.
  cur_.set_context("tensor info section");
  const uint64_t rest = cur_.remaining();
  if (n_tensors_ > rest / kMinTensorInfoBytes) {
    fail("tensor_count " + str(n_tensors_) + " is larger than the " + str(rest) +
         " bytes left after the metadata could hold");
  }
  out_.tensors.reserve(size_t(n_tensors_));
  for (uint64_t i = 0; i < n_tensors_; ++i) {
    GgufTensorInfo t = parse_tensor_info(i);
    out_.tensor_index.emplace(t.name, out_.tensors.size());
    out_.tensors.push_back(std::move(t));
  }
}

GgufTensorInfo Parser::parse_tensor_info(uint64_t index) {
  GgufTensorInfo t;
  const std::string entry = "tensor info #" + str(index);
  cur_.set_context(entry);
  t.name = cur_.read_string("tensor name");
  if (t.name.empty()) fail(entry + " has an empty name");
  const std::string qname = quote(t.name);
  if (t.name.size() > kMaxTensorNameLen) {
    fail("tensor name " + qname + " is " + str(t.name.size()) + " bytes long (limit " +
         str(kMaxTensorNameLen) + ")");
  }
  if (out_.tensor_index.count(t.name)) fail("duplicate tensor name " + qname + " (" + entry + ")");
  cur_.set_context(entry + " (" + qname + ")");
  parse_shape(t, qname);
  const uint32_t type_id = cur_.read<uint32_t>("type");
  if (!ggml_type_info(type_id)) fail("tensor " + qname + ": unknown ggml type id " + str(type_id));
  t.type = GgmlType(type_id);
  t.offset = cur_.read<uint64_t>("offset");
  compute_nbytes(t, qname);
  return t;
}

void Parser::parse_shape(GgufTensorInfo& t, const std::string& qname) {
  t.n_dims = cur_.read<uint32_t>("n_dims");
  if (t.n_dims == 0 || t.n_dims > kMaxDims) {
    fail("tensor " + qname + ": n_dims " + str(t.n_dims) + " out of range 1..4");
  }
  int64_t count = 1;
  for (uint32_t d = 0; d < t.n_dims; ++d) {
    const uint64_t ne = cur_.read<uint64_t>("dimension");
    if (ne == 0) fail("tensor " + qname + ": dimension ne[" + str(d) + "] is 0");
    if (ne > uint64_t(INT64_MAX)) {
      fail("tensor " + qname + ": dimension ne[" + str(d) + "] = " + str(ne) +
           " exceeds INT64_MAX");
    }
    t.ne[d] = int64_t(ne);
    if (__builtin_mul_overflow(count, t.ne[d], &count)) {
      fail("tensor " + qname + ": element count of shape " + format_shape(t.ne, d + 1) +
           " overflows int64");
    }
  }
}

// ggml_tensor_nbytes says only "invalid"; find out why so the message is specific.
void Parser::compute_nbytes(GgufTensorInfo& t, const std::string& qname) {
  if (auto n = ggml_tensor_nbytes(t.type, t.ne)) {
    t.nbytes = *n;
    return;
  }
  const GgmlTypeInfo& info = ggml_type_info(t.type);
  const std::string what = "tensor " + qname + " of type " + std::string(info.name) + " shape " +
                           format_shape(t.ne, t.n_dims);
  if (info.block_size > 0 && t.ne[0] % info.block_size != 0) {
    fail(what + ": row length ne0 = " + str(uint64_t(t.ne[0])) +
         " is not a multiple of the block size " + str(uint64_t(info.block_size)));
  }
  if (t.type == GgmlType::TL2 && t.ne[0] < 256) {
    fail(what + ": TL2 needs a row length ne0 of at least 256");
  }
  if (t.type == GgmlType::I2_S || t.type == GgmlType::TL1) {
    const int64_t n = t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];  // cannot overflow: checked above
    if (n % 4 != 0) fail(what + ": element count is not a multiple of 4");
  }
  fail(what + ": byte size overflows");
}

void Parser::place_tensors() {
  const uint64_t size = cur_.size();
  // Section ends at pos() <= size, so aligning cannot overflow.
  align_up(cur_.pos(), out_.alignment, &out_.data_start);
  for (const GgufTensorInfo& t : out_.tensors) {
    if (t.offset % out_.alignment != 0) {
      fail("tensor " + quote(t.name) + ": offset " + str(t.offset) + " is not a multiple of the alignment " +
           str(out_.alignment));
    }
    if (t.offset > UINT64_MAX - out_.data_start ||
        t.nbytes > UINT64_MAX - (out_.data_start + t.offset)) {
      fail("tensor " + quote(t.name) + ": data_start " + str(out_.data_start) + " + offset " +
           str(t.offset) + " + size " + str(t.nbytes) + " overflows 64 bits");
    }
    const uint64_t begin = out_.data_start + t.offset;
    const uint64_t end = begin + t.nbytes;
    if (end > size) {
      fail("tensor " + quote(t.name) + ": data [" + str(begin) + ", " + str(end) +
           ") extends past end of file (" + str(size) + " bytes)");
    }
  }
  // Sorted by offset, each tensor must end before the next one starts.
  std::vector<size_t> order(out_.tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return out_.tensors[a].offset < out_.tensors[b].offset;
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& prev = out_.tensors[order[k - 1]];
    const GgufTensorInfo& cur = out_.tensors[order[k]];
    if (prev.offset + prev.nbytes > cur.offset) {
      fail("tensor " + quote(cur.name) + " (offset " + str(cur.offset) + ") overlaps tensor " +
           quote(prev.name) + " (data offsets [" + str(prev.offset) + ", " +
           str(prev.offset + prev.nbytes) + "))");
    }
  }
}

}  // namespace

ParsedGguf parse_gguf(std::span<const uint8_t> bytes, const std::string& name) {
  return Parser(bytes, name).run();
}

}  // namespace bitnet::gguf_detail
