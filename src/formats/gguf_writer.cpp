// GGUF writer (shared/spec/gguf.md §6). Everything is validated when declared, so write() can
// only fail on I/O or on a throwing producer; the file appears under its final name only after
// every byte was written.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "formats/gguf_common.h"

namespace bitnet {

using namespace gguf_detail;

namespace {

std::string errno_text(int err) { return std::generic_category().message(err); }

[[noreturn]] void misuse(const std::string& msg) { throw Error("GgufWriter: " + msg); }

// ---- value validation ------------------------------------------------------------------------

// The variant alternative each scalar type must hold (see GgufValue).
bool holds_expected(const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64: return std::holds_alternative<uint64_t>(v.value);
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64: return std::holds_alternative<int64_t>(v.value);
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: return std::holds_alternative<double>(v.value);
    case GgufValueType::BOOL: return std::holds_alternative<bool>(v.value);
    case GgufValueType::STRING: return std::holds_alternative<std::string>(v.value);
    case GgufValueType::ARRAY: return std::holds_alternative<GgufArray>(v.value);
  }
  return false;
}

void check_array(const std::string& qkey, const GgufArray& a) {
  const GgufValueType t = a.elem_type;
  if (!is_valid_value_type(uint32_t(t))) misuse("key " + qkey + ": invalid array element type");
  if (t == GgufValueType::ARRAY) misuse("key " + qkey + ": arrays of arrays are not supported");
  // Exactly the vector matching the element type may be filled.
  const bool ints_ok = is_int_type(t) || a.ints.empty();
  const bool floats_ok = is_float_type(t) || a.floats.empty();
  const bool bools_ok = t == GgufValueType::BOOL || a.bools.empty();
  const bool strings_ok = t == GgufValueType::STRING || a.strings.empty();
  if (!ints_ok || !floats_ok || !bools_ok || !strings_ok) {
    misuse("key " + qkey + ": array elements stored in the wrong vector for element type " +
           std::string(gguf_value_type_name(t)));
  }
  for (int64_t x : a.ints) {
    if (!int_fits(t, x)) {
      misuse("key " + qkey + ": array value " + std::to_string(x) + " does not fit " +
             std::string(gguf_value_type_name(t)));
    }
  }
}

void check_value(const std::string& qkey, const GgufValue& v) {
  if (!is_valid_value_type(uint32_t(v.type))) misuse("key " + qkey + ": invalid value type");
  if (!holds_expected(v)) {
    misuse("key " + qkey + ": value does not hold the representation of type " +
           std::string(gguf_value_type_name(v.type)));
  }
  if (const auto* u = std::get_if<uint64_t>(&v.value); u && !uint_fits(v.type, *u)) {
    misuse("key " + qkey + ": value " + std::to_string(*u) + " does not fit " +
           std::string(gguf_value_type_name(v.type)));
  }
  if (const auto* i = std::get_if<int64_t>(&v.value); i && !int_fits(v.type, *i)) {
    misuse("key " + qkey + ": value " + std::to_string(*i) + " does not fit " +
           std::string(gguf_value_type_name(v.type)));
  }
  if (const auto* a = std::get_if<GgufArray>(&v.value)) check_array(qkey, *a);
}

// ---- serialization ---------------------------------------------------------------------------

class ByteBuf {
 public:
  template <class T>
  void put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t align) { out.resize(size_t((out.size() + align - 1) / align * align), 0); }
  std::vector<uint8_t> out;
};

void put_scalar_int(ByteBuf& b, GgufValueType t, uint64_t bits) {
  // Two's-complement truncation: values were range-checked when added.
  switch (fixed_value_size(t)) {
    case 1: b.put<uint8_t>(uint8_t(bits)); break;
    case 2: b.put<uint16_t>(uint16_t(bits)); break;
    case 4: b.put<uint32_t>(uint32_t(bits)); break;
    default: b.put<uint64_t>(bits); break;
  }
}

void put_float(ByteBuf& b, GgufValueType t, double d) {
  if (t == GgufValueType::FLOAT32) {
    b.put<float>(float(d));
  } else {
    b.put<double>(d);
  }
}

void put_array(ByteBuf& b, const GgufArray& a) {
  b.put<uint32_t>(uint32_t(a.elem_type));
  b.put<uint64_t>(a.size());
  for (int64_t x : a.ints) put_scalar_int(b, a.elem_type, uint64_t(x));
  for (double d : a.floats) put_float(b, a.elem_type, d);
  for (bool x : a.bools) b.put<uint8_t>(x ? 1 : 0);
  for (const std::string& s : a.strings) b.put_string(s);
}

void put_value(ByteBuf& b, const GgufValue& v) {
  b.put<uint32_t>(uint32_t(v.type));
  if (const auto* u = std::get_if<uint64_t>(&v.value)) put_scalar_int(b, v.type, *u);
  if (const auto* i = std::get_if<int64_t>(&v.value)) put_scalar_int(b, v.type, uint64_t(*i));
  if (const auto* d = std::get_if<double>(&v.value)) put_float(b, v.type, *d);
  if (const auto* x = std::get_if<bool>(&v.value)) b.put<uint8_t>(*x ? 1 : 0);
  if (const auto* s = std::get_if<std::string>(&v.value)) b.put_string(*s);
  if (const auto* a = std::get_if<GgufArray>(&v.value)) put_array(b, *a);
}

// general.architecture first (readers elsewhere expect it there), the rest in insertion order.
std::vector<const GgufKV*> kv_write_order(const std::vector<GgufKV>& kvs) {
  std::vector<const GgufKV*> order;
  order.reserve(kvs.size());
  for (const GgufKV& kv : kvs)
    if (kv.key == kArchitectureKey) order.push_back(&kv);
  for (const GgufKV& kv : kvs)
    if (kv.key != kArchitectureKey) order.push_back(&kv);
  return order;
}

struct TensorJob {
  GgufTensorInfo info;  // offset filled in by plan_layout
  const GgufWriter::Producer* produce;
};

// Works on the writer's private PendingTensor list without naming the type.
template <class Pending>
std::vector<TensorJob> make_jobs(const std::vector<Pending>& pending) {
  std::vector<TensorJob> jobs;
  jobs.reserve(pending.size());
  for (const auto& p : pending) jobs.push_back(TensorJob{p.info, &p.produce});
  return jobs;
}

// Assigns offsets in declaration order; returns the size of the data section including padding.
uint64_t plan_layout(std::vector<TensorJob>& jobs, uint32_t align) {
  uint64_t offset = 0;
  for (TensorJob& j : jobs) {
    j.info.offset = offset;
    if (!align_up(j.info.nbytes, align, &offset) || offset > UINT64_MAX - j.info.offset) {
      misuse("total tensor data size overflows 64 bits");
    }
    offset += j.info.offset;
  }
  return offset;
}

std::vector<uint8_t> serialize_header(const std::vector<GgufKV>& kvs,
                                      const std::vector<TensorJob>& jobs, uint32_t align) {
  ByteBuf b;
  b.out.insert(b.out.end(), kMagic, kMagic + 4);
  b.put<uint32_t>(kVersion);
  b.put<uint64_t>(jobs.size());
  b.put<uint64_t>(kvs.size());
  for (const GgufKV* kv : kv_write_order(kvs)) {
    b.put_string(kv->key);
    put_value(b, kv->value);
  }
  for (const TensorJob& j : jobs) {
    b.put_string(j.info.name);
    b.put<uint32_t>(j.info.n_dims);
    for (uint32_t d = 0; d < j.info.n_dims; ++d) b.put<uint64_t>(uint64_t(j.info.ne[d]));
    b.put<uint32_t>(uint32_t(j.info.type));
    b.put<uint64_t>(j.info.offset);
  }
  // Zero-tensor (vocab-only) files end right after the KV section, like the reference writer's.
  if (!jobs.empty()) b.pad_to(align);
  return b.out;
}

using Sink = std::function<void(const uint8_t* data, size_t n)>;

// Emits the whole file through `sink`, producing tensor bytes one tensor at a time into a single
// reused buffer sized for the largest tensor.
void stream_file(const std::vector<GgufKV>& kvs, std::vector<TensorJob> jobs, uint32_t align,
                 const Sink& sink, const GgufWriter::Progress& progress) {
  const uint64_t data_bytes = plan_layout(jobs, align);
  const std::vector<uint8_t> header = serialize_header(kvs, jobs, align);
  const uint64_t total = header.size() + data_bytes;
  sink(header.data(), header.size());
  uint64_t done = header.size();
  if (progress) progress(done, total);

  uint64_t largest = 0;
  for (const TensorJob& j : jobs) largest = std::max(largest, j.info.nbytes);
  std::vector<uint8_t> buf(static_cast<size_t>(largest));
  const std::vector<uint8_t> zeros(align, 0);
  for (const TensorJob& j : jobs) {
    const size_t n = size_t(j.info.nbytes);
    std::fill(buf.begin(), buf.begin() + n, 0);  // deterministic output even if a producer skips bytes
    (*j.produce)(std::span<uint8_t>(buf.data(), n));
    sink(buf.data(), n);
    const size_t pad = size_t((align - n % align) % align);
    sink(zeros.data(), pad);
    done += n + pad;
    if (progress) progress(done, total);
  }
}

// Owns the descriptor of the temporary output file; every failed call reports errno's text.
class FileSink {
 public:
  // Creates a new file beside `target` (never an existing one: O_EXCL does not follow a planted
  // symlink), named target.tmp.<pid>.<n>.
  explicit FileSink(const std::string& target) {
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0; fd_ < 0; ++attempt) {
      path_ = target + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd_ < 0 && (errno != EEXIST || attempt == 100))
        throw Error(path_ + ": cannot create: " + errno_text(errno));
    }
  }
  const std::string& path() const { return path_; }
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;
  ~FileSink() {
    if (fd_ >= 0) ::close(fd_);
  }

  void write(const uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw Error(path_ + ": write failed: " + errno_text(w < 0 ? errno : ENOSPC));
      p += w;
      n -= size_t(w);
    }
  }

  // Flushes to disk (some file systems report a full disk only here) and closes.
  void finish() {
    if (::fsync(fd_) != 0 && errno != EINVAL) {
      throw Error(path_ + ": fsync failed: " + errno_text(errno));
    }
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw Error(path_ + ": close failed: " + errno_text(errno));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

// ---- GgufWriter ------------------------------------------------------------------------------

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (!is_power_of_two(alignment)) {
    misuse("alignment " + std::to_string(alignment) + " is not a non-zero power of two");
  }
  if (alignment != kDefaultAlignment) {
    kvs_.push_back(GgufKV{std::string(kAlignmentKey), GgufValue{GgufValueType::UINT32,
                                                                uint64_t(alignment)}});
  }
}

void GgufWriter::add(std::string key, GgufValue value) {
  const std::string qkey = quote(key);
  if (key.empty()) misuse("empty key");
  check_value(qkey, value);
  if (key == kAlignmentKey) {
    // Must agree with the constructor's alignment, which decides the layout. Re-adding the key
    // the constructor already wrote is accepted so a parsed file can be re-written verbatim.
    const auto* a = std::get_if<uint64_t>(&value.value);
    if (value.type != GgufValueType::UINT32 || !a || *a != alignment_) {
      misuse("general.alignment must be UINT32 " + std::to_string(alignment_) +
             " (pass the alignment to the constructor)");
    }
    if (alignment_ != kDefaultAlignment) return;
  }
  for (const GgufKV& kv : kvs_)
    if (kv.key == key) misuse("duplicate key " + qkey);
  kvs_.push_back(GgufKV{std::move(key), std::move(value)});
}

void GgufWriter::add_string(std::string key, std::string v) {
  add(std::move(key), GgufValue{GgufValueType::STRING, std::move(v)});
}
void GgufWriter::add_u32(std::string key, uint32_t v) {
  add(std::move(key), GgufValue{GgufValueType::UINT32, uint64_t(v)});
}
void GgufWriter::add_i32(std::string key, int32_t v) {
  add(std::move(key), GgufValue{GgufValueType::INT32, int64_t(v)});
}
void GgufWriter::add_u64(std::string key, uint64_t v) {
  add(std::move(key), GgufValue{GgufValueType::UINT64, v});
}
void GgufWriter::add_f32(std::string key, float v) {
  add(std::move(key), GgufValue{GgufValueType::FLOAT32, double(v)});
}
void GgufWriter::add_bool(std::string key, bool v) {
  add(std::move(key), GgufValue{GgufValueType::BOOL, v});
}
void GgufWriter::add_string_array(std::string key, std::vector<std::string> v) {
  GgufArray a;
  a.elem_type = GgufValueType::STRING;
  a.strings = std::move(v);
  add(std::move(key), GgufValue{GgufValueType::ARRAY, std::move(a)});
}
void GgufWriter::add_f32_array(std::string key, const std::vector<float>& v) {
  GgufArray a;
  a.elem_type = GgufValueType::FLOAT32;
  a.floats.assign(v.begin(), v.end());
  add(std::move(key), GgufValue{GgufValueType::ARRAY, std::move(a)});
}
void GgufWriter::add_i32_array(std::string key, const std::vector<int32_t>& v) {
  GgufArray a;
  a.elem_type = GgufValueType::INT32;
  a.ints.assign(v.begin(), v.end());
  add(std::move(key), GgufValue{GgufValueType::ARRAY, std::move(a)});
}

void GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne,
                            Producer produce) {
  const std::string qname = quote(name);
  if (name.empty()) misuse("empty tensor name");
  if (name.size() > kMaxTensorNameLen) {
    misuse("tensor name " + qname + " is longer than " + std::to_string(kMaxTensorNameLen) +
           " bytes");
  }
  for (const PendingTensor& t : tensors_)
    if (t.info.name == name) misuse("duplicate tensor name " + qname);
  if (ne.empty() || ne.size() > kMaxDims) misuse("tensor " + qname + ": needs 1..4 dimensions");
  if (!ggml_type_info(uint32_t(type))) misuse("tensor " + qname + ": invalid ggml type");
  if (!produce) misuse("tensor " + qname + ": no producer");
  GgufTensorInfo info;
  info.name = std::move(name);
  info.n_dims = uint32_t(ne.size());
  info.type = type;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] < 1) misuse("tensor " + qname + ": dimension ne[" + std::to_string(d) + "] < 1");
    info.ne[d] = ne[d];
  }
  const auto nbytes = ggml_tensor_nbytes(type, info.ne);
  if (!nbytes) {
    misuse("tensor " + qname + ": shape " + format_shape(info.ne, info.n_dims) +
           " is invalid for type " + std::string(ggml_type_name(type)));
  }
  info.nbytes = *nbytes;
  tensors_.push_back(PendingTensor{std::move(info), std::move(produce)});
}

void GgufWriter::add_tensor_bytes(std::string name, GgmlType type, std::vector<int64_t> ne,
                                  std::vector<uint8_t> bytes) {
  std::array<int64_t, 4> shape = {1, 1, 1, 1};
  for (size_t d = 0; d < ne.size() && d < shape.size(); ++d) shape[d] = ne[d];
  const auto nbytes = ggml_tensor_nbytes(type, shape);
  // Invalid shapes are left for add_tensor to report.
  if (!ne.empty() && ne.size() <= shape.size() && nbytes && *nbytes != bytes.size()) {
    misuse("tensor " + quote(name) + ": got " + std::to_string(bytes.size()) +
           " bytes, type and shape need " + std::to_string(*nbytes));
  }
  // std::function must be copyable, so the bytes are shared rather than moved into the lambda.
  auto data = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  add_tensor(std::move(name), type, std::move(ne), [data](std::span<uint8_t> out) {
    std::copy(data->begin(), data->end(), out.begin());
  });
}

void GgufWriter::write(const std::string& path, const Progress& progress) const {
  // The output replaces a regular file or nothing: renaming over a device node, FIFO or socket
  // would destroy it, and a directory cannot be replaced.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(path + (S_ISDIR(st.st_mode) ? ": is a directory" : ": exists and is not a regular file (a device, FIFO or socket)") +
                "; choose a file name for the output");
  std::string tmp;
  bool created = false;
  try {
    FileSink file(path);
    tmp = file.path();
    created = true;
    stream_file(kvs_, make_jobs(tensors_), alignment_,
                [&](const uint8_t* p, size_t n) { file.write(p, n); }, progress);
    file.finish();
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      throw Error(tmp + ": cannot rename to " + path + ": " + errno_text(errno));
    }
  } catch (...) {
    if (created) ::unlink(tmp.c_str());
    throw;
  }
}

std::vector<uint8_t> GgufWriter::write_to_memory() const {
  std::vector<uint8_t> out;
  stream_file(kvs_, make_jobs(tensors_), alignment_,
              [&](const uint8_t* p, size_t n) { out.insert(out.end(), p, p + n); }, {});
  return out;
}

}  // namespace bitnet
