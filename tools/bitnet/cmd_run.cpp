// `bitnet run` / `llama-cli`: text generation with llama-cli's flags.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "model_options.h"
#include "runtime/generate.h"
#include "runtime/text_stream.h"

namespace bitnet::cli {
namespace {

struct RunOptions {
  ModelOptions model;
  std::string prompt, prompt_file, system_prompt;
  int64_t n_predict = -1;
  SamplingParams sampling;
  uint64_t seed = UINT64_MAX;
  bool conversation = false, ignore_eos = false, no_display_prompt = false;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read prompt file: " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Streams one reply to stdout; returns why generation stopped.
StopReason stream_reply(Session& session, std::span<const float> logits, Sampler& sampler,
                        const GenerateOptions& gen, std::string* reply) {
  const Tokenizer& tok = *session.model().tokenizer;
  Utf8Stream out;
  const StopReason reason = generate(session, logits, sampler, gen, [&](int32_t id) {
    const std::string piece = tok.token_to_piece(id);
    if (reply) *reply += piece;
    std::fputs(out.push(piece).c_str(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputs(out.flush().c_str(), stdout);
  std::fflush(stdout);
  if (reason == StopReason::ContextFull)
    std::fprintf(stderr, "\n[context full after %lld tokens: generation stopped; raise -c]\n",
                 (long long)session.n_ctx());
  return reason;
}

int conversation(Session& session, Sampler& sampler, const GenerateOptions& gen,
                 const std::string& system_prompt, const std::string& first) {
  const Model& m = *&session.model();
  const Tokenizer& tok = *m.tokenizer;
  const ChatFormat format =
      detect_chat_format(tok.data().chat_template, m.hp.arch.name);
  std::vector<ChatMessage> messages;
  if (!system_prompt.empty()) messages.push_back({"system", system_prompt});
  std::string line = first;
  bool have_line = !first.empty();
  for (;;) {
    if (!have_line) {
      std::fputs("\n> ", stdout);
      std::fflush(stdout);
      if (!std::getline(std::cin, line)) break;
    }
    have_line = false;
    if (line.empty()) continue;
    messages.push_back({"user", line});
    const std::string text = apply_chat_template(format, messages, true);
    const auto ids = tok.encode(text, true, true);
    std::string reply;
    const StopReason r = stream_reply(session, session.set_tokens(ids), sampler, gen, &reply);
    messages.push_back({"assistant", reply});
    if (r == StopReason::ContextFull) return 0;
  }
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

int cmd_run(int argc, char** argv) {
  RunOptions o;
  ArgParser p("bitnet run", "Generate text with a BitNet / ternary model (llama-cli compatible flags).");
  add_model_options(p, o.model);
  p.option({"-p", "--prompt"}, "TEXT", "prompt", &o.prompt);
  p.option({"-f", "--file"}, "FILE", "read the prompt from a file", &o.prompt_file);
  p.option({"-n", "--n-predict"}, "N", "tokens to generate (-1: until end of text or full context)",
           &o.n_predict);
  p.option({"--temp"}, "T", "temperature (0: greedy; default 0.8)", &o.sampling.temperature);
  p.option({"--top-k"}, "N", "top-k sampling (0: off; default 40)", &o.sampling.top_k);
  p.option({"--top-p"}, "P", "top-p sampling (1: off; default 0.95)", &o.sampling.top_p);
  p.option({"--min-p"}, "P", "min-p sampling (0: off; default 0.05)", &o.sampling.min_p);
  p.option({"--repeat-penalty"}, "X", "repetition penalty (1: off; default 1.0)", &o.sampling.repeat_penalty);
  p.option({"--repeat-last-n"}, "N", "tokens considered by the penalty (default 64)", &o.sampling.repeat_last_n);
  p.option({"-s", "--seed"}, "N", "random seed (-1: from the clock)", &o.seed);
  p.flag({"-cnv", "--conversation"}, "chat mode: read user turns from stdin, use the chat template", &o.conversation);
  p.option({"-sys", "--system-prompt"}, "TEXT", "system prompt for chat mode", &o.system_prompt);
  p.flag({"--ignore-eos"}, "keep generating past end-of-text tokens", &o.ignore_eos);
  p.flag({"--no-display-prompt"}, "do not echo the prompt", &o.no_display_prompt);
  if (!p.parse(argc, argv)) return 0;

  if (!o.prompt.empty() && !o.prompt_file.empty()) throw UsageError("give either -p or -f, not both");
  if (!o.prompt_file.empty()) o.prompt = read_file(o.prompt_file);
  if (o.n_predict < -1) throw UsageError("-n must be -1 or ≥ 0");
  if (const std::string err = validate(o.sampling); !err.empty()) throw UsageError(err);
  o.sampling.seed = o.seed != UINT64_MAX
                        ? o.seed
                        : uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  if (!o.conversation && o.prompt.empty()) throw UsageError("no prompt: give -p TEXT or -f FILE (or -cnv)");

  LoadedModel lm = load_for_run(o.model);
  if (!lm.model->tokenizer) throw Error("model has no tokenizer");
  Session session(*lm.model, lm.ctx, lm.threads, o.model.batch);
  session.timings.load_ms = lm.load_ms;
  Sampler sampler(o.sampling);
  const GenerateOptions gen{o.n_predict, o.ignore_eos};
  std::fprintf(stderr, "sampling: temp %.2f, top-k %d, top-p %.2f, min-p %.2f, repeat-penalty %.2f, seed %llu\n\n",
               o.sampling.temperature, o.sampling.top_k, o.sampling.top_p, o.sampling.min_p,
               o.sampling.repeat_penalty, (unsigned long long)o.sampling.seed);

  int rc = 0;
  if (o.conversation) {
    rc = conversation(session, sampler, gen, o.system_prompt, o.prompt);
  } else {
    const auto ids = lm.model->tokenizer->encode(o.prompt, true, true);
    if (!o.no_display_prompt) {
      std::fputs(o.prompt.c_str(), stdout);
      std::fflush(stdout);
    }
    stream_reply(session, session.set_tokens(ids), sampler, gen, nullptr);
    std::fputc('\n', stdout);
  }
  print_timings(session.timings);
  return rc;
}

namespace {
const CommandRegistration kRegistration({"run", "llama-cli", cmd_run, "generate text from a prompt (llama-cli flags)", 10});
}  // namespace

}  // namespace bitnet::cli
