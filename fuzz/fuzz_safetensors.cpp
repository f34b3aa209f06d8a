// Hugging Face checkpoints: the safetensors header (JSON table of dtypes, shapes, offsets) from
// arbitrary bytes, and config.json (the first input byte picks which) through read_hf_config.
#include <cstdint>
#include <filesystem>
#include <span>

#include "conversion/hf_config.h"
#include "errors.h"
#include "formats/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if (data[0] & 1) {
      const auto st = bitnet::SafetensorsFile::parse(std::span<const uint8_t>(data + 1, size - 1), "fuzz.safetensors");
      (void)st;
    } else {
      static const std::filesystem::path dir = [] {
        const std::filesystem::path d = bitnet::fuzz::scratch_path("-config");
        std::filesystem::create_directories(d);
        return d;
      }();
      const std::string json = (dir / "config.json").string();
      std::ofstream(json, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data + 1), std::streamsize(size - 1));
      (void)bitnet::read_hf_config(dir.string());
    }
  } catch (const bitnet::Error&) {
  }
  return 0;
}
