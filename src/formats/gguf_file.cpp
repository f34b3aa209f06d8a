// GgufFile: owns the memory mapping (or borrows a caller's buffer) and the parsed, validated
// metadata; tensor data is handed out as pointers into the mapping, never copied.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "formats/gguf_common.h"
#include "formats/mapping_guard.h"

namespace bitnet {

using namespace gguf_detail;

namespace {

std::string errno_text(int err) { return std::generic_category().message(err); }

// A read-only private mapping of a whole file, guarded against the file shrinking
// (formats/mapping_guard.h); unmapped on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len, const std::string& path) : addr_(addr), len_(len) { guard_mapping(addr, len, path); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (!addr_) return;
    unguard_mapping(addr_);
    munmap(addr_, len_);
  }
  std::span<const uint8_t> bytes() const {
    return {static_cast<const uint8_t*>(addr_), len_};
  }

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

// Closes the descriptor on every path out of open().
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

std::unique_ptr<Mapping> map_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; the S_ISREG check below then
  // refuses it (for a regular file the flag changes nothing).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error(path + ": cannot open: " + errno_text(errno));
  FdCloser closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0) throw Error(path + ": cannot stat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode))
    throw Error(path + (S_ISDIR(st.st_mode) ? ": is a directory" : ": not a regular file (a device, FIFO or socket)") +
                ", not a GGUF model");
  if (st.st_size == 0) return std::make_unique<Mapping>();  // mmap rejects length 0
  const size_t len = size_t(st.st_size);
  void* addr = mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) throw Error(path + ": cannot mmap: " + errno_text(errno));
  return std::make_unique<Mapping>(addr, len, path);
}

}  // namespace

struct GgufFile::Impl {
  std::string path;
  std::unique_ptr<Mapping> mapping;  // null when parsing a caller-owned buffer
  std::span<const uint8_t> bytes;
  ParsedGguf parsed;

  [[noreturn]] void type_error(std::string_view key, const GgufValue& v,
                               std::string_view expected) const {
    throw FormatError(path + ": key " + quote(key) + " has type " + describe_type(v) +
                      ", expected " + std::string(expected));
  }
};

GgufFile::GgufFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->mapping = map_file(path);
  impl->bytes = impl->mapping->bytes();
  impl->parsed = parse_gguf(impl->bytes, impl->path);
  return GgufFile(std::move(impl));
}

GgufFile GgufFile::parse(std::span<const uint8_t> bytes, std::string name) {
  auto impl = std::make_unique<Impl>();
  impl->path = std::move(name);
  impl->bytes = bytes;
  impl->parsed = parse_gguf(impl->bytes, impl->path);
  return GgufFile(std::move(impl));
}

const std::string& GgufFile::path() const { return impl_->path; }
bool GgufFile::memory_mapped() const { return impl_->mapping != nullptr; }
uint32_t GgufFile::version() const { return impl_->parsed.version; }
uint32_t GgufFile::alignment() const { return impl_->parsed.alignment; }
uint64_t GgufFile::data_start() const { return impl_->parsed.data_start; }
uint64_t GgufFile::file_size() const { return impl_->bytes.size(); }
const std::vector<GgufKV>& GgufFile::metadata() const { return impl_->parsed.kvs; }
const std::vector<GgufTensorInfo>& GgufFile::tensors() const { return impl_->parsed.tensors; }

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = impl_->parsed.key_index.find(key);
  return it == impl_->parsed.key_index.end() ? nullptr : &impl_->parsed.kvs[it->second].value;
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::STRING) impl_->type_error(key, *v, "STRING");
  return std::get<std::string>(v->value);
}

std::optional<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (is_unsigned_int_type(v->type)) return std::get<uint64_t>(v->value);
  if (is_signed_int_type(v->type)) {
    const int64_t x = std::get<int64_t>(v->value);
    if (x < 0) {
      throw FormatError(impl_->path + ": key " + quote(key) + " has negative value " +
                        std::to_string(x) + " (type " + describe_type(*v) +
                        "), expected a non-negative integer");
    }
    return uint64_t(x);
  }
  impl_->type_error(key, *v, "an unsigned integer");
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (is_signed_int_type(v->type)) return std::get<int64_t>(v->value);
  if (is_unsigned_int_type(v->type)) {
    const uint64_t x = std::get<uint64_t>(v->value);
    if (x > uint64_t(INT64_MAX)) {
      throw FormatError(impl_->path + ": key " + quote(key) + " value " + std::to_string(x) +
                        " (UINT64) does not fit INT64");
    }
    return int64_t(x);
  }
  impl_->type_error(key, *v, "an integer");
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (is_float_type(v->type)) return std::get<double>(v->value);
  if (is_unsigned_int_type(v->type)) return double(std::get<uint64_t>(v->value));
  if (is_signed_int_type(v->type)) return double(std::get<int64_t>(v->value));
  impl_->type_error(key, *v, "FLOAT32/FLOAT64 or an integer");
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::BOOL) impl_->type_error(key, *v, "BOOL");
  return std::get<bool>(v->value);
}

std::optional<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  const auto* a = std::get_if<GgufArray>(&v->value);
  if (!a || a->elem_type != GgufValueType::STRING) impl_->type_error(key, *v, "ARRAY[STRING]");
  return a->strings;
}

std::optional<std::vector<double>> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  // Integer arrays are refused on purpose: a u8 array read as scores is a malformed file.
  const auto* a = std::get_if<GgufArray>(&v->value);
  if (!a || !is_float_type(a->elem_type)) {
    impl_->type_error(key, *v, "ARRAY[FLOAT32] or ARRAY[FLOAT64]");
  }
  return a->floats;
}

std::optional<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  const auto* a = std::get_if<GgufArray>(&v->value);
  if (!a || !is_int_type(a->elem_type)) impl_->type_error(key, *v, "an ARRAY of integers");
  return a->ints;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = impl_->parsed.tensor_index.find(name);
  return it == impl_->parsed.tensor_index.end() ? nullptr : &impl_->parsed.tensors[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  // The parser guaranteed data_start + offset + nbytes <= file size.
  return impl_->bytes.data() + impl_->parsed.data_start + t.offset;
}

TensorView GgufFile::view(const GgufTensorInfo& t) const {
  TensorView v;
  v.name = t.name;
  v.type = t.type;
  v.ne = t.ne;
  v.data = tensor_data(t);
  v.nbytes = t.nbytes;
  return v;
}

TensorView GgufFile::view(std::string_view name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) return TensorView{};
  return view(*t);
}

}  // namespace bitnet
