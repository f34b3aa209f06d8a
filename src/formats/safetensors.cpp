#include "formats/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <system_error>

#include "formats/half.h"

namespace bitnet {
namespace {

// The reference implementation refuses headers above 100 MB; so do we, before allocating.
constexpr uint64_t kMaxHeader = 100u << 20;

struct DtypeEntry {
  StDtype type;
  const char* name;
  size_t size;
};
constexpr DtypeEntry kDtypes[] = {
    {StDtype::BOOL, "BOOL", 1}, {StDtype::U8, "U8", 1},     {StDtype::I8, "I8", 1},
    {StDtype::U16, "U16", 2},   {StDtype::I16, "I16", 2},   {StDtype::F16, "F16", 2},
    {StDtype::BF16, "BF16", 2}, {StDtype::U32, "U32", 4},   {StDtype::I32, "I32", 4},
    {StDtype::F32, "F32", 4},   {StDtype::U64, "U64", 8},   {StDtype::I64, "I64", 8},
    {StDtype::F64, "F64", 8},   {StDtype::F8_E4M3, "F8_E4M3", 1}, {StDtype::F8_E5M2, "F8_E5M2", 1},
};

std::string errno_text(int err) { return std::generic_category().message(err); }

struct Mapping {
  void* addr = nullptr;
  size_t len = 0;
  ~Mapping() {
    if (addr) munmap(addr, len);
  }
};

std::unique_ptr<Mapping> map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + errno_text(errno));
  struct stat st {};
  const bool ok = fstat(fd, &st) == 0;
  const int stat_err = errno;
  auto m = std::make_unique<Mapping>();
  if (ok && S_ISREG(st.st_mode) && st.st_size > 0) {
    m->len = size_t(st.st_size);
    void* addr = mmap(nullptr, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_err = errno;
    ::close(fd);
    if (addr == MAP_FAILED) throw Error(path + ": cannot mmap: " + errno_text(map_err));
    m->addr = addr;
    return m;
  }
  ::close(fd);
  if (!ok) throw Error(path + ": cannot stat: " + errno_text(stat_err));
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  return m;  // empty file: parse() reports it
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

}  // namespace

size_t st_dtype_size(StDtype t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.size;
  return 0;
}
const char* st_dtype_name(StDtype t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  return "?";
}

int64_t StTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated at parse time not to overflow
  return n;
}

std::string StTensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

struct SafetensorsFile::Impl {
  std::string path;
  std::unique_ptr<Mapping> mapping;
  std::vector<StTensor> tensors;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

const std::string& SafetensorsFile::path() const { return impl_->path; }
const std::vector<StTensor>& SafetensorsFile::tensors() const { return impl_->tensors; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return impl_->metadata; }

const StTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : impl_->tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void SafetensorsFile::release(const StTensor& t) const {
  if (!impl_->mapping || !impl_->mapping->addr || t.nbytes == 0) return;
  const long page = sysconf(_SC_PAGESIZE);
  const auto base = reinterpret_cast<uintptr_t>(impl_->mapping->addr);
  uintptr_t begin = reinterpret_cast<uintptr_t>(t.data), end = begin + t.nbytes;
  begin = (begin + uintptr_t(page) - 1) / uintptr_t(page) * uintptr_t(page);  // whole pages only:
  end = end / uintptr_t(page) * uintptr_t(page);  // neighbours may still need a shared page
  if (begin < base || end <= begin) return;
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // advisory; errors harmless
}

namespace {

StDtype parse_dtype(const std::string& where, const nlohmann::json& j) {
  if (!j.is_string()) throw FormatError(where + ": 'dtype' must be a string");
  const std::string s = j.get<std::string>();
  for (const auto& d : kDtypes)
    if (s == d.name) return d.type;
  throw FormatError(where + ": unknown dtype '" + s + "'");
}

uint64_t parse_u64(const std::string& where, const nlohmann::json& j) {
  if (!j.is_number_unsigned()) throw FormatError(where + " must be a non-negative integer");
  return j.get<uint64_t>();
}

StTensor parse_entry(const std::string& file, const std::string& name, const nlohmann::json& e,
                     const uint8_t* data, uint64_t data_size) {
  const std::string where = file + ": tensor '" + name + "'";
  if (!e.is_object()) throw FormatError(where + ": entry is not an object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) throw FormatError(where + ": missing '" + std::string(key) + "'");
  StTensor t;
  t.name = name;
  t.dtype = parse_dtype(where, e["dtype"]);
  const auto& shape = e["shape"];
  if (!shape.is_array()) throw FormatError(where + ": 'shape' must be an array");
  uint64_t bytes = st_dtype_size(t.dtype);
  for (const auto& d : shape) {
    const uint64_t v = parse_u64(where + ": shape entry", d);
    if (v > uint64_t(INT64_MAX) || mul_overflows(bytes, v, &bytes) || bytes > uint64_t(INT64_MAX))
      throw FormatError(where + ": shape " + shape.dump() + " overflows");
    t.shape.push_back(int64_t(v));
  }
  const auto& offs = e["data_offsets"];
  if (!offs.is_array() || offs.size() != 2)
    throw FormatError(where + ": 'data_offsets' must be [begin, end]");
  const uint64_t begin = parse_u64(where + ": data_offsets", offs[0]);
  const uint64_t end = parse_u64(where + ": data_offsets", offs[1]);
  if (begin > end) throw FormatError(where + ": data_offsets [" + std::to_string(begin) + ", " +
                                     std::to_string(end) + "] are reversed");
  if (end > data_size)
    throw FormatError(where + ": data_offsets end " + std::to_string(end) +
                      " is beyond the data section (" + std::to_string(data_size) + " bytes)");
  if (end - begin != bytes)
    throw FormatError(where + ": data_offsets span " + std::to_string(end - begin) + " bytes but " +
                      st_dtype_name(t.dtype) + " " + shape.dump() + " needs " + std::to_string(bytes));
  t.data = data + begin;
  t.nbytes = bytes;
  return t;
}

void check_no_overlap(const std::string& file, std::vector<StTensor>& ts, const uint8_t* data) {
  std::sort(ts.begin(), ts.end(), [](const StTensor& a, const StTensor& b) {
    return a.data != b.data ? a.data < b.data : a.nbytes < b.nbytes;
  });
  for (size_t i = 1; i < ts.size(); ++i) {
    const uint64_t prev_end = uint64_t(ts[i - 1].data - data) + ts[i - 1].nbytes;
    if (uint64_t(ts[i].data - data) < prev_end && ts[i].nbytes > 0 && ts[i - 1].nbytes > 0)
      throw FormatError(file + ": tensors '" + ts[i - 1].name + "' and '" + ts[i].name +
                        "' overlap in the data section");
  }
}

}  // namespace

SafetensorsFile SafetensorsFile::parse(std::span<const uint8_t> bytes, std::string name) {
  auto impl = std::make_unique<Impl>();
  impl->path = std::move(name);
  const std::string& file = impl->path;
  if (bytes.size() < 8)
    throw FormatError(file + ": too short for a safetensors file (" + std::to_string(bytes.size()) + " bytes)");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);  // little-endian hosts only (x86-64, aarch64)
  if (n > kMaxHeader) throw FormatError(file + ": header length " + std::to_string(n) + " exceeds 100 MiB");
  if (n > bytes.size() - 8)
    throw FormatError(file + ": header length " + std::to_string(n) + " exceeds the file size (" +
                      std::to_string(bytes.size()) + " bytes)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + std::ptrdiff_t(n));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(file + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw FormatError(file + ": header is not a JSON object");
  const uint8_t* data = bytes.data() + 8 + n;
  const uint64_t data_size = bytes.size() - 8 - n;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) throw FormatError(file + ": '__metadata__' must be an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) throw FormatError(file + ": __metadata__ value '" + mk + "' is not a string");
        impl->metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    impl->tensors.push_back(parse_entry(file, key, value, data, data_size));
  }
  check_no_overlap(file, impl->tensors, data);
  return SafetensorsFile(std::move(impl));
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto mapping = map_file(path);
  std::span<const uint8_t> bytes(static_cast<const uint8_t*>(mapping->addr), mapping->len);
  SafetensorsFile f = parse(bytes, path);
  f.impl_->mapping = std::move(mapping);
  return f;
}

void st_to_f32(const StTensor& t, int64_t first, int64_t n, float* out) {
  const uint8_t* p = t.data + uint64_t(first) * st_dtype_size(t.dtype);
  switch (t.dtype) {
    case StDtype::F32: std::memcpy(out, p, size_t(n) * 4); return;
    case StDtype::F16:
    case StDtype::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);  // the data section need not be aligned
        out[i] = t.dtype == StDtype::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
      }
      return;
    case StDtype::F64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = float(d);
      }
      return;
    default:
      throw FormatError("tensor '" + t.name + "' has dtype " + st_dtype_name(t.dtype) +
                        "; expected F32, F16, BF16 or F64");
  }
}

}  // namespace bitnet
