// `bitnet embed` (also `llama-embedding`): embedding vectors of texts, with llama-embedding's flags
// and output formats. All inputs go through the model together (runtime/embed.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/escapes.h"
#include "commands.h"
#include "errors.h"
#include "model_options.h"
#include "runtime/embed.h"

namespace bitnet::cli {
namespace {

std::vector<std::string> split(const std::string& text, const std::string& separator) {
  std::vector<std::string> parts;
  if (separator.empty()) return {text};
  size_t start = 0;
  for (size_t at; (at = text.find(separator, start)) != std::string::npos; start = at + separator.size())
    parts.push_back(text.substr(start, at - start));
  parts.push_back(text.substr(start));
  return parts;
}

// "1,2,3" (commas and/or spaces) → ids; a UsageError names the bad item.
std::vector<int32_t> parse_ids(const std::string& text, size_t index) {
  std::vector<int32_t> ids;
  std::string item;
  auto flush = [&] {
    if (item.empty()) return;
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX)
      throw UsageError("input " + std::to_string(index) + ": '" + item + "' is not a token id");
    ids.push_back(int32_t(v));
    item.clear();
  };
  for (char c : text) {
    if (c == ',' || c == ' ' || c == '\t' || c == '[' || c == ']') flush();
    else item += c;
  }
  flush();
  return ids;
}

float cosine(const std::vector<float>& a, const std::vector<float>& b, size_t n) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < n; ++i) dot += double(a[i]) * b[i], na += double(a[i]) * a[i], nb += double(b[i]) * b[i];
  return (na > 0 && nb > 0) ? float(dot / std::sqrt(na * nb)) : 0.0f;
}

std::string number(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%1.7f", double(v));
  return buf;
}

std::string row_text(const float* v, int64_t n) {
  std::string s = "[";
  for (int64_t i = 0; i < n; ++i) s += (i ? "," : "") + number(v[i]);
  return s + "]";
}

int cmd_embed(int argc, char** argv) {
  ModelOptions mo;
  std::vector<std::string> prompts;
  std::string file, separator = "\n", format, pooling_text;
  int64_t normalize = 2;
  bool token_ids = false, no_escape = false, verbose_prompt = false;
  ArgParser p("bitnet embed", "Print embedding vectors of texts (llama-embedding's flags and output formats).");
  add_model_options(p, mo);
  p.multi_option({"-p", "--prompt"}, "TEXT", "input text; split into several inputs at the separator (repeatable)", &prompts);
  p.option({"-f", "--file"}, "FILE", "read the inputs from a file (split at the separator)", &file);
  p.option({"--embd-separator"}, "S", "separator between inputs (default: newline)", &separator);
  p.option({"--embd-output-format"}, "FMT",
           "'' (a summary per input and the cosine matrix), array, json, json+ (json with the cosine matrix)", &format);
  p.option({"--pooling"}, "TYPE", "none | mean | cls | last (default: the model's, else last)", &pooling_text);
  p.option({"--embd-normalize"}, "N",
           "-1 none, 0 max-abs (int16 range), 1 taxicab, 2 euclidean (default), N > 2: p-norm", &normalize);
  p.flag({"--token-ids"}, "each input is a list of token ids (\"1,2,3\"), used as is (no BOS/EOS added)", &token_ids);
  p.flag({"--no-escape"}, "do not process escapes (\\n, \\t, …) in -p and the separator", &no_escape);
  p.flag({"--verbose-prompt"}, "print each input's token ids on stderr", &verbose_prompt);
  if (!p.parse(argc, argv)) return 0;

  if (format != "" && format != "array" && format != "json" && format != "json+")
    throw UsageError("--embd-output-format must be array, json or json+ (got '" + format + "')");
  if (normalize < -1 || normalize > 64) throw UsageError("--embd-normalize must be between -1 and 64");
  EmbedOptions options;
  options.normalize = int(normalize);
  if (!pooling_text.empty()) {
    if (pooling_text == "rank")
      throw UsageError("--pooling rank (reranking) is not supported; use none, mean, cls or last");
    options.pooling = parse_pooling(pooling_text);
    if (!options.pooling) throw UsageError("--pooling must be none, mean, cls or last (got '" + pooling_text + "')");
  }
  if (!no_escape) {
    for (auto& text : prompts) text = process_escapes(text);
    separator = process_escapes(separator);
  }
  std::vector<std::string> texts;
  for (const auto& text : prompts)
    for (auto& part : split(text, separator)) texts.push_back(std::move(part));
  if (!file.empty())
    for (auto& part : split(read_text_input(file, "input file"), separator)) texts.push_back(std::move(part));
  // A trailing separator (a file's last newline) leaves no input behind.
  while (texts.size() > 1 && texts.back().empty()) texts.pop_back();
  if (texts.empty()) throw UsageError("no input: give -p TEXT or -f FILE");

  LoadedModel lm = load_for_run(mo);
  const Model& model = *lm.model;
  std::vector<std::vector<int32_t>> inputs;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (token_ids) {
      inputs.push_back(parse_ids(texts[i], i));
    } else {
      if (!model.tokenizer) throw Error("the model has no tokenizer: use --token-ids");
      inputs.push_back(tokenize_for_embedding(*model.tokenizer, texts[i]));
    }
    if (verbose_prompt) {
      std::fprintf(stderr, "input %zu: %zu tokens:", i, inputs.back().size());
      for (int32_t id : inputs.back()) std::fprintf(stderr, " %d", id);
      std::fprintf(stderr, "\n");
    }
  }
  int64_t longest = 0;
  for (const auto& in : inputs) longest = std::max<int64_t>(longest, int64_t(in.size()));
  // The cache holds as many inputs at once as one batch of tokens can feed (at most 64).
  const int64_t n_ctx = std::max<int64_t>(1, std::min(longest, lm.ctx));
  const int64_t n_seq = std::clamp<int64_t>(std::max<int64_t>(1, 2 * mo.batch / n_ctx), 1,
                                            std::min<int64_t>(64, int64_t(inputs.size())));
  ThreadPool pool(lm.threads);
  check_cache_head_dim(lm.cache, model.hp.head_dim);
  Embedder embedder(model, n_ctx, n_seq, mo.batch, pool, lm.cache.k, lm.cache.v);
  const Pooling pooling = embedder.resolve(options);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Embedding> out = embedder.embed(inputs, options);
  const double ms = elapsed_ms(start);
  int64_t total_tokens = 0;
  for (const auto& in : inputs) total_tokens += int64_t(in.size());
  std::fprintf(stderr, "embedded %zu inputs (%lld tokens, pooling %s) in %.1f ms: %.1f tokens/s, %.1f inputs/s\n",
               inputs.size(), (long long)total_tokens, std::string(pooling_name(pooling)).c_str(), ms,
               ms > 0 ? 1000.0 * double(total_tokens) / ms : 0.0, ms > 0 ? 1000.0 * double(inputs.size()) / ms : 0.0);

  // One row per pooled input, or per token with pooling none (llama-embedding's layout).
  const size_t n_embd = size_t(model.hp.n_embd);
  std::vector<std::vector<float>> rows;
  for (const Embedding& e : out)
    for (size_t r = 0; r < e.values.size(); r += n_embd)
      rows.emplace_back(e.values.begin() + long(r), e.values.begin() + long(r + n_embd));

  if (format == "array") {
    std::string s = "[";
    for (size_t r = 0; r < rows.size(); ++r) s += (r ? "," : "") + row_text(rows[r].data(), int64_t(n_embd));
    std::printf("%s]\n", s.c_str());
  } else if (format == "json" || format == "json+") {
    std::string s = "{\n  \"object\": \"list\",\n  \"data\": [\n";
    for (size_t r = 0; r < rows.size(); ++r)
      s += "    {\n      \"object\": \"embedding\",\n      \"index\": " + std::to_string(r) +
           ",\n      \"embedding\": " + row_text(rows[r].data(), int64_t(n_embd)) + "\n    }" +
           (r + 1 < rows.size() ? ",\n" : "\n");
    s += "  ]";
    if (format == "json+" && rows.size() > 1) {
      s += ",\n  \"cosineSimilarity\": [\n";
      for (size_t i = 0; i < rows.size(); ++i) {
        s += "    [";
        for (size_t j = 0; j < rows.size(); ++j) s += (j ? ", " : "") + number(cosine(rows[i], rows[j], n_embd));
        s += i + 1 < rows.size() ? "],\n" : "]\n";
      }
      s += "  ]";
    }
    std::printf("%s\n}\n", s.c_str());
  } else {
    for (size_t r = 0; r < rows.size(); ++r) {
      std::printf("embedding %zu: ", r);
      const size_t head = std::min<size_t>(3, n_embd);
      for (size_t i = 0; i < head; ++i) std::printf("%9.6f ", double(rows[r][i]));
      if (n_embd > 6) std::printf(" ... ");
      for (size_t i = std::max(head, n_embd > 3 ? n_embd - 3 : n_embd); i < n_embd; ++i)
        std::printf("%9.6f ", double(rows[r][i]));
      std::printf("\n");
    }
    if (rows.size() > 1 && pooling != Pooling::None) {
      std::printf("\ncosine similarity matrix:\n\n");
      for (size_t i = 0; i < rows.size(); ++i) {
        for (size_t j = 0; j < rows.size(); ++j) std::printf("%6.2f ", double(cosine(rows[i], rows[j], n_embd)));
        std::printf("\n");
      }
    }
  }
  return 0;
}

const CommandRegistration kRegistration({"embed", "llama-embedding", cmd_embed,
                                         "embedding vectors of texts (llama-embedding flags)", 25});

}  // namespace
}  // namespace bitnet::cli
