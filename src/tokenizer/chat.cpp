// Chat formats (tokenizers.md §5): detection from the GGUF template text and native rendering.
#include "tokenizer/tokenizer.h"

namespace bitnet {
namespace {

bool contains(std::string_view s, std::string_view t) { return s.find(t) != std::string_view::npos; }

// Jinja `trim`: strip leading/trailing whitespace.
std::string_view trim(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// Jinja `capitalize`: first character upper-case, the rest lower-case (ASCII).
std::string capitalize(std::string_view s) {
  std::string out(s);
  for (size_t i = 0; i < out.size(); ++i) {
    char& c = out[i];
    if (i == 0 && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    if (i > 0 && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

}  // namespace

ChatFormat detect_chat_format(std::string_view tmpl, std::string_view architecture) {
  if (tmpl.empty())
    return (architecture == "bitnet-b1.58" || architecture == "bitnet-25") ? ChatFormat::BitNet
                                                                           : ChatFormat::Plain;
  if (contains(tmpl, "BITNETAssistant")) return ChatFormat::BitNet;
  if (contains(tmpl, "<|start_header_id|>") && contains(tmpl, "<|end_header_id|>"))
    return ChatFormat::Llama3;
  if (contains(tmpl, "| capitalize + ': '") && contains(tmpl, "<|eot_id|>")) return ChatFormat::BitNet;
  if (contains(tmpl, "<|assistant|>") && contains(tmpl, "<|user|>")) return ChatFormat::Falcon3;
  if (contains(tmpl, "<|im_start|>") && contains(tmpl, "<|im_end|>")) return ChatFormat::ChatML;
  return ChatFormat::Plain;
}

namespace {
constexpr std::pair<std::string_view, ChatFormat> kFormatNames[] = {
    {"bitnet", ChatFormat::BitNet}, {"llama3", ChatFormat::Llama3}, {"falcon3", ChatFormat::Falcon3},
    {"chatml", ChatFormat::ChatML}, {"plain", ChatFormat::Plain}};
}  // namespace

std::optional<ChatFormat> chat_format_by_name_or_template(std::string_view v) {
  for (const auto& [name, format] : kFormatNames)
    if (v == name) return format;
  const ChatFormat detected = detect_chat_format(v, "");
  // Plain is what detection falls back to: only a template that really is the plain one counts.
  if (detected == ChatFormat::Plain && v != chat_template_text(ChatFormat::Plain)) return std::nullopt;
  return detected;
}

std::string chat_format_names() {
  std::string out;
  for (const auto& [name, format] : kFormatNames) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

std::string apply_chat_template(ChatFormat format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages) {
    switch (format) {
      case ChatFormat::BitNet:
        out += capitalize(m.role);
        out += ": ";
        out += trim(m.content);
        out += "<|eot_id|>";
        break;
      case ChatFormat::Llama3:
        out += "<|start_header_id|>";
        out += m.role;
        out += "<|end_header_id|>\n\n";
        out += trim(m.content);
        out += "<|eot_id|>";
        break;
      case ChatFormat::Falcon3:
        out += "<|" + m.role + "|>\n";
        out += m.content;
        out += "\n";
        break;
      case ChatFormat::ChatML:
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        break;
      case ChatFormat::Plain:
        out += m.content;
        break;
    }
  }
  if (add_generation_prompt) {
    switch (format) {
      case ChatFormat::BitNet: out += "Assistant: "; break;
      case ChatFormat::Llama3: out += "<|start_header_id|>assistant<|end_header_id|>\n\n"; break;
      case ChatFormat::Falcon3: out += "<|assistant|>\n"; break;
      case ChatFormat::ChatML: out += "<|im_start|>assistant\n"; break;
      case ChatFormat::Plain: break;
    }
  }
  return out;
}

std::string chat_template_text(ChatFormat format) {
  switch (format) {
    case ChatFormat::BitNet:
      return "{% for message in messages %}{{ message['role'] | capitalize + ': ' + "
             "message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
             "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";
    case ChatFormat::Llama3:
      return "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
             "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
             "{% endif %}";
    case ChatFormat::Falcon3:
      return "{% for message in messages %}{% if message['role'] == 'user' %}"
             "{{ '<|user|>\\n' + message['content'] + '\\n' }}"
             "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + '\\n' }}"
             "{% else %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}{% endif %}"
             "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";
    case ChatFormat::ChatML:
      return "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
             "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    case ChatFormat::Plain:
      return "{% for message in messages %}{{ message['content'] }}{% endfor %}";
  }
  return {};
}

}  // namespace bitnet
