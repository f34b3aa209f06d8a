// `bitnet inspect`: metadata and tensor table of a GGUF file (text or --json).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/untrusted_text.h"
#include "commands.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model_options.h"

namespace bitnet::cli {
namespace {

nlohmann::json value_json(const GgufValue& v, size_t max_array) {
  return std::visit(
      [&](const auto& x) -> nlohmann::json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, GgufArray>) {
          nlohmann::json arr = nlohmann::json::array();
          const size_t n = std::min(x.size(), max_array);
          for (size_t i = 0; i < n; ++i) {
            if (!x.ints.empty()) arr.push_back(x.ints[i]);
            else if (!x.floats.empty()) arr.push_back(x.floats[i]);
            else if (!x.bools.empty()) arr.push_back(bool(x.bools[i]));
            else arr.push_back(x.strings[i]);
          }
          return arr;
        } else {
          return x;
        }
      },
      v.value);
}

std::string short_value(const GgufValue& v) {
  if (const auto* arr = std::get_if<GgufArray>(&v.value))
    return "[" + std::string(gguf_value_type_name(arr->elem_type)) + " x " +
           std::to_string(arr->size()) + "] " + value_json(v, 4).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string s = value_json(v, 0).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 120) s = s.substr(0, 117) + "...";
  return s;
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  std::string path;
  bool json = false;
  int64_t max_array = 16;
  ArgParser p("bitnet inspect", "Show the metadata and tensor table of a GGUF file.");
  p.positional("FILE", "GGUF file", &path, true);
  p.flag({"--json"}, "print one JSON object", &json);
  p.option({"--max-array"}, "N", "array elements shown in --json output (default 16)", &max_array);
  if (!p.parse(argc, argv)) return 0;
  if (max_array < 0) throw UsageError("--max-array must be ≥ 0");

  GgufFile file = GgufFile::open(path);
  // Try binding the model to report whether it runs and which load-time repacks it needs.
  std::string model_status = "ok";
  std::vector<std::string> notes;
  try {
    auto m = load_model(GgufFile::open(path), LoadOptions{});
    notes = m->load_notes;
  } catch (const std::exception& e) {
    model_status = e.what();
  }

  if (json) {
    nlohmann::json j;
    j["path"] = path;
    j["version"] = file.version();
    j["alignment"] = file.alignment();
    j["file_size"] = file.file_size();
    j["data_start"] = file.data_start();
    j["runnable"] = model_status == "ok";
    j["model_status"] = model_status;
    j["load_notes"] = notes;
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& kv : file.metadata()) {
      nlohmann::json e;
      e["type"] = gguf_value_type_name(kv.value.type);
      if (const auto* arr = std::get_if<GgufArray>(&kv.value.value)) {
        e["element_type"] = gguf_value_type_name(arr->elem_type);
        e["count"] = arr->size();
      }
      e["value"] = value_json(kv.value, size_t(max_array));
      meta[kv.key] = e;
    }
    j["metadata"] = meta;
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : file.tensors())
      tensors.push_back({{"name", t.name},
                         {"type", ggml_type_name(t.type)},
                         {"ne", std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims)},
                         {"offset", t.offset},
                         {"nbytes", t.nbytes}});
    j["tensors"] = tensors;
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("%s: GGUF v%u, %zu metadata entries, %zu tensors, alignment %u, %.2f MiB\n", path.c_str(),
              file.version(), file.metadata().size(), file.tensors().size(), file.alignment(),
              double(file.file_size()) / (1 << 20));
  std::printf("\nmetadata:\n");
  for (const auto& kv : file.metadata())
    std::printf("  %-45s %-8s %s\n", printable(kv.key).c_str(),
                std::string(gguf_value_type_name(kv.value.type)).c_str(), printable(short_value(kv.value)).c_str());
  std::printf("\ntensors:\n  %-32s %-6s %-22s %12s %12s\n", "name", "type", "shape", "offset", "bytes");
  for (const auto& t : file.tensors()) {
    std::string shape = "[";
    for (uint32_t d = 0; d < t.n_dims; ++d) shape += (d ? ", " : "") + std::to_string(t.ne[d]);
    shape += "]";
    std::printf("  %-32s %-6s %-22s %12llu %12llu\n", printable(t.name).c_str(),
                std::string(ggml_type_name(t.type)).c_str(), shape.c_str(),
                (unsigned long long)t.offset, (unsigned long long)t.nbytes);
  }
  std::printf("\nmodel: %s\n", model_status == "ok" ? "runnable" : printable("not runnable: " + model_status).c_str());
  for (const auto& n : notes) std::printf("  %s\n", printable(n).c_str());
  return 0;
}

namespace {
const CommandRegistration kRegistration({"inspect", nullptr, cmd_inspect, "show a GGUF file's metadata and tensors", 70});
}  // namespace

}  // namespace bitnet::cli
