#pragma once
// Shared pieces of the libFuzzer targets (fuzz/README.md): every target feeds one input to one
// parser and treats bitnet::Error (and the CLI's UsageError) as the expected outcome for bad
// input; anything else — a crash, a sanitizer report, another exception type — is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

namespace bitnet::fuzz {

// The source tree's data/ (data/README.md), or $BITNET_SHARED_DATA.
inline std::string data_dir() {
  if (const char* d = std::getenv("BITNET_SHARED_DATA"); d && *d) return d;
  return std::string(BITNET_SOURCE_DIR) + "/data";
}

// A per-process path in /dev/shm (or /tmp) ending in `suffix`.
inline std::string scratch_path(const char* suffix) {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/bitnet-fuzz-" + std::to_string(getpid()) + suffix;
}

// For readers that take a path: the input written to scratch_path(suffix).
inline std::string input_file(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = scratch_path(suffix);
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

// Stops the fuzzer (a finding) when text meant for a terminal holds a byte the terminal would act
// on: a C0 control (a newline only where allowed), DEL, or a C1 control in its UTF-8 form.
inline void require_terminal_inert(std::string_view s, bool allow_newline = false) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && !(allow_newline && c == '\n')) || c == 0x7f) __builtin_trap();
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9f)
      __builtin_trap();
  }
}

}  // namespace bitnet::fuzz
