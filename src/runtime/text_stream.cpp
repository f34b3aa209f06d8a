#include "runtime/text_stream.h"

namespace bitnet {

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  // Look back at most 3 bytes for the start of an incomplete multi-byte sequence.
  size_t keep = 0;
  for (size_t back = 1; back <= 4 && back <= pending_.size(); ++back) {
    const unsigned char c = static_cast<unsigned char>(pending_[pending_.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead byte
    const size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (need > back) keep = back;
    break;
  }
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace bitnet
