// The chat-template layer: format detection from an arbitrary template string and architecture,
// and rendering arbitrary messages (roles and contents from the input) in every format.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "errors.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  // Fields separated by NUL: template, architecture, then role/content pairs.
  std::vector<std::string> fields;
  for (size_t pos = 0; pos <= in.size();) {
    const size_t end = std::min(in.find('\0', pos), in.size());
    fields.emplace_back(in.substr(pos, end - pos));
    pos = end + 1;
  }
  try {
    const bitnet::ChatFormat detected = bitnet::detect_chat_format(fields[0], fields.size() > 1 ? fields[1] : "");
    (void)bitnet::chat_format_by_name_or_template(fields[0]);
    std::vector<bitnet::ChatMessage> messages;
    for (size_t i = 2; i + 1 < fields.size(); i += 2) messages.push_back({fields[i], fields[i + 1]});
    for (bitnet::ChatFormat f : {detected, bitnet::ChatFormat::BitNet, bitnet::ChatFormat::Llama3,
                                 bitnet::ChatFormat::Falcon3, bitnet::ChatFormat::ChatML, bitnet::ChatFormat::Plain}) {
      (void)bitnet::apply_chat_template(f, messages, true);
      (void)bitnet::apply_chat_template(f, messages, false);
    }
  } catch (const bitnet::Error&) {
  }
  return 0;
}
