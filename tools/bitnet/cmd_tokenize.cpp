// `bitnet tokenize`: token ids of a text, as the model's tokenizer produces them.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "model_options.h"

namespace bitnet::cli {

int cmd_tokenize(int argc, char** argv) {
  std::string model, prompt;
  bool json = false, no_bos = false, no_parse_special = false, show_pieces = false;
  ArgParser p("bitnet tokenize", "Print the token ids of a text.");
  p.option({"-m", "--model"}, "FILE", "GGUF model (only its tokenizer is read)", &model);
  p.option({"-p", "--prompt"}, "TEXT", "text to tokenize", &prompt);
  p.flag({"--json"}, "print a JSON object", &json);
  p.flag({"--no-bos"}, "do not add the BOS token", &no_bos);
  p.flag({"--no-parse-special"}, "treat special-token texts as plain text", &no_parse_special);
  p.flag({"--show-pieces"}, "print each id with its text", &show_pieces);
  if (!p.parse(argc, argv)) return 0;
  if (model.empty()) throw UsageError("missing -m FILE");
  const Tokenizer tok(read_vocab(GgufFile::open(model)));
  const auto ids = tok.encode(prompt, !no_bos, !no_parse_special);
  if (json) {
    nlohmann::json j;
    j["tokens"] = ids;
    std::vector<std::string> pieces;
    for (int32_t id : ids) pieces.push_back(tok.token_to_piece(id, true));
    j["pieces"] = pieces;  // invalid UTF-8 (partial characters) is replaced with U+FFFD on output
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  if (show_pieces) {
    for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, tok.token_to_piece(id, true).c_str());
    return 0;
  }
  std::printf("[");
  for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? ", %d" : "%d", ids[i]);
  std::printf("]\n");
  return 0;
}

namespace {
const CommandRegistration kRegistration({"tokenize", nullptr, cmd_tokenize, "print the token ids of a text", 80});
}  // namespace

}  // namespace bitnet::cli
