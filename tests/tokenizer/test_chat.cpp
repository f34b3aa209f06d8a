// Chat format detection and rendering (tokenizers.md §5).
#include <gtest/gtest.h>

#include "tok_test_util.h"

using namespace bitnet;

namespace {

// The template embedded in the official 2B-4T GGUF (tokenizers.md §5.2), paraphrased.
const char* kOfficialBitnet =
    "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' + "
    "eos_token }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% endif %}{% endfor %}";

const std::vector<ChatMessage> kConv = {
    {"system", "  You are helpful. "}, {"user", "Hey, are you conscious?\n"}, {"assistant", "Yes."}};

}  // namespace

TEST(Chat, DetectFormats) {
  EXPECT_EQ(detect_chat_format(kOfficialBitnet, "bitnet-b1.58"), ChatFormat::BitNet);
  EXPECT_EQ(detect_chat_format("", "bitnet-b1.58"), ChatFormat::BitNet);
  EXPECT_EQ(detect_chat_format("", "bitnet-25"), ChatFormat::BitNet);
  EXPECT_EQ(detect_chat_format("", "llama"), ChatFormat::Plain);
  EXPECT_EQ(detect_chat_format("", "bitnet"), ChatFormat::Plain);
  EXPECT_EQ(detect_chat_format("{{ message.content }}", "llama"), ChatFormat::Plain);
  for (ChatFormat f : {ChatFormat::BitNet, ChatFormat::Llama3, ChatFormat::Falcon3, ChatFormat::ChatML, ChatFormat::Plain}) {
    EXPECT_EQ(detect_chat_format(chat_template_text(f), "llama"), f);
    EXPECT_FALSE(chat_template_text(f).empty());
  }
  // A real-world-style Llama-3 template.
  EXPECT_EQ(detect_chat_format("{% set content = '<|start_header_id|>' + message['role'] + "
                               "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}",
                               "llama"),
            ChatFormat::Llama3);
  EXPECT_EQ(detect_chat_format("{{ '<|user|>\\n' }}{{ '<|assistant|>\\n' }}{{ '</s>' }}", "llama"),
            ChatFormat::Falcon3);
}

TEST(Chat, RenderBitNet) {
  const std::vector<ChatMessage> hf = {{"user", "Hey, are you conscious? Can you talk to me?"}};
  EXPECT_EQ(apply_chat_template(ChatFormat::BitNet, hf, true),
            "User: Hey, are you conscious? Can you talk to me?<|eot_id|>Assistant: ");
  EXPECT_EQ(apply_chat_template(ChatFormat::BitNet, kConv, false),
            "System: You are helpful.<|eot_id|>User: Hey, are you conscious?<|eot_id|>"
            "Assistant: Yes.<|eot_id|>");
  const std::vector<ChatMessage> upper = {{"USER", "x"}};
  EXPECT_EQ(apply_chat_template(ChatFormat::BitNet, upper, false), "User: x<|eot_id|>");
}

TEST(Chat, RenderLlama3) {
  EXPECT_EQ(apply_chat_template(ChatFormat::Llama3, kConv, true),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHey, are you conscious?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nYes.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(Chat, RenderFalcon3) {
  const std::vector<ChatMessage> m = {{"system", "S"}, {"user", "Hi"}};
  EXPECT_EQ(apply_chat_template(ChatFormat::Falcon3, m, true),
            "<|system|>\nS\n<|user|>\nHi\n<|assistant|>\n");
  EXPECT_EQ(apply_chat_template(ChatFormat::Falcon3, m, false), "<|system|>\nS\n<|user|>\nHi\n");
}

TEST(Chat, RenderChatML) {
  // As the common ChatML templates: contents as they are (no trimming).
  EXPECT_EQ(apply_chat_template(ChatFormat::ChatML, kConv, true),
            "<|im_start|>system\n  You are helpful. <|im_end|>\n<|im_start|>user\nHey, are you conscious?\n<|im_end|>\n"
            "<|im_start|>assistant\nYes.<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Chat, FormatsByNameOrTemplate) {
  EXPECT_EQ(chat_format_by_name_or_template("llama3"), ChatFormat::Llama3);
  EXPECT_EQ(chat_format_by_name_or_template("chatml"), ChatFormat::ChatML);
  EXPECT_EQ(chat_format_by_name_or_template("bitnet"), ChatFormat::BitNet);
  EXPECT_EQ(chat_format_by_name_or_template("plain"), ChatFormat::Plain);
  EXPECT_EQ(chat_format_by_name_or_template(chat_template_text(ChatFormat::Falcon3)), ChatFormat::Falcon3);
  EXPECT_EQ(chat_format_by_name_or_template(chat_template_text(ChatFormat::Plain)), ChatFormat::Plain);
  EXPECT_EQ(chat_format_by_name_or_template("{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}<|im_end|>{% endfor %}"),
            ChatFormat::ChatML);
  EXPECT_EQ(chat_format_by_name_or_template("This is not a chat template, it is"), std::nullopt);
  EXPECT_EQ(chat_format_by_name_or_template("command-r"), std::nullopt);
  EXPECT_NE(chat_format_names().find("chatml"), std::string::npos);
}

TEST(Chat, RenderPlain) {
  const std::vector<ChatMessage> m = {{"user", "Once upon"}, {"assistant", " a time"}};
  EXPECT_EQ(apply_chat_template(ChatFormat::Plain, m, true), "Once upon a time");
  EXPECT_EQ(apply_chat_template(ChatFormat::Plain, {}, true), "");
}

TEST(Chat, BitNetPromptTokenizes) {
  const Tokenizer& tok = bitnet::test::llama3_tokenizer();
  const std::vector<ChatMessage> hf = {{"user", "Hi"}};
  const std::string text = apply_chat_template(ChatFormat::BitNet, hf, true);
  const auto ids = tok.encode(text, true, true);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 128000);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 128000), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 128009), 1);
  EXPECT_EQ(tok.decode(ids), "User: Hi" "Assistant: ");
}
