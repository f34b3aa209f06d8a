// `bitnet run` / `llama-cli`: text generation with llama-cli's flags.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include "base/escapes.h"
#include "base/line_reader.h"
#include "commands.h"
#include "formats/gguf.h"
#include "grammar/constraint.h"
#include "model_options.h"
#include "runtime/generate.h"
#include "runtime/telemetry.h"
#include "telemetry_options.h"
#include "runtime/text_stream.h"

namespace bitnet::cli {
namespace {

struct RunOptions {
  ModelOptions model;
  std::string prompt, prompt_file, system_prompt, chat_template;
  int64_t n_predict = -1;
  SamplingParams sampling;
  uint64_t seed = UINT64_MAX;
  bool conversation = false, ignore_eos = false, no_display_prompt = false;
  bool no_conversation = false, interactive = false, interactive_first = false, single_turn = false;
  bool escape = false, no_escape = false, color = false;
  bool context_shift = false, no_context_shift = false;
  int64_t keep = 0;
  std::vector<std::string> reverse_prompts;
  bool dry_run = false, json = false;
  std::string telemetry_out, otlp_endpoint;
  GrammarOptions grammar;
  std::shared_ptr<const Grammar> parsed_grammar;  // from the grammar options
};

RunConfig to_run_config(const RunOptions& o) {
  RunConfig c = to_run_config(o.model);
  c.prompt = o.prompt;
  c.prompt_file = o.prompt_file;
  c.system_prompt = o.system_prompt;
  c.n_predict = o.n_predict;
  c.sampling = o.sampling;
  if (o.seed != UINT64_MAX) c.seed = o.seed;
  c.conversation = o.conversation;
  c.interactive = o.interactive;
  c.interactive_first = o.interactive_first;
  c.reverse_prompts = o.reverse_prompts;
  c.ignore_eos = o.ignore_eos;
  c.no_display_prompt = o.no_display_prompt;
  c.context_shift = o.context_shift && !o.no_context_shift;
  c.keep = o.keep;
  c.telemetry_out = o.telemetry_out;
  return c;
}

// Per-reply telemetry: prompt evaluation and generation figures since `before`.
void emit_prompt(Telemetry& t, const Timings& before, const Timings& now, int turn) {
  const int64_t n = now.prompt_tokens - before.prompt_tokens;
  const double ms = now.prompt_ms - before.prompt_ms;
  t.emit("prompt_processed", {{"turn", turn}, {"prompt_tokens", n}, {"prompt_ms", ms},
                              {"tokens_per_s", ms > 0 ? 1e3 * double(n) / ms : 0.0}});
}

void emit_generated(Telemetry& t, const Timings& before, const Timings& now, int turn, StopReason r) {
  const int64_t n = now.sampled - before.sampled;
  const double ms = now.eval_ms - before.eval_ms + now.sample_ms - before.sample_ms;
  t.emit("tokens_generated", {{"turn", turn}, {"tokens", n}, {"eval_ms", now.eval_ms - before.eval_ms},
                              {"sample_ms", now.sample_ms - before.sample_ms},
                              {"tokens_per_s", ms > 0 ? 1e3 * double(n) / ms : 0.0},
                              {"stop_reason", stop_reason_name(r)}});
}

// --dry-run: resolve what can be resolved without loading weights (the GGUF header gives the
// training context) and print it with the argument list that reproduces the run.
int dry_run(const RunConfig& given, bool json, const CacheTypes& cache) {
  RunConfig c = given;
  nlohmann::json resolved = nlohmann::json::object();
  const bool is_default = c.model.empty();
  c.model = is_default ? default_model_location() : c.model;
  std::error_code ec;
  const bool exists = std::filesystem::exists(c.model, ec);
  resolved["model"] = c.model;
  resolved["model_is_default"] = is_default;
  resolved["model_exists"] = exists;
  const ThreadPlan tp = plan_threads(c.threads);
  c.threads = tp.threads;
  resolved["threads"] = tp.threads;
  resolved["threads_automatic"] = tp.automatic;
  resolved["hardware_threads"] = tp.hardware;
  resolved["thread_ceiling"] = tp.ceiling ? nlohmann::json(*tp.ceiling) : nlohmann::json(nullptr);
  if (!tp.note.empty()) resolved["threads_note"] = tp.note;
  resolved["ctx_size"] = nullptr;
  if (exists) {
    const HParams hp = read_hparams(GgufFile::open(c.model));
    c.ctx_size = resolve_ctx(c.ctx_size, hp.n_ctx_train);
    resolved["ctx_size"] = c.ctx_size;
    resolved["n_ctx_train"] = hp.n_ctx_train;
  } else if (c.ctx_size > 0) {
    resolved["ctx_size"] = c.ctx_size;
  }
  resolved["batch_size"] = c.batch_size;
  resolved["n_predict"] = c.n_predict;
  resolved["seed"] = c.seed ? nlohmann::json(*c.seed) : nlohmann::json("from the clock at start");
  resolved["backend"] = "cpu";
  resolved["cache_type_k"] = kv_type_name(cache.k);
  resolved["cache_type_v"] = kv_type_name(cache.v);
  std::vector<std::string> argv = run_arguments(c, self_executable());
  if (cache.k != KvType::F16) argv.insert(argv.end(), {"-ctk", kv_type_name(cache.k)});
  if (cache.v != KvType::F16) argv.insert(argv.end(), {"-ctv", kv_type_name(cache.v)});
  print_dry_run("run", to_json(given), resolved, argv, json);
  return 0;
}

// How replies are shown and where they stop: llama-cli's reverse prompts (-r) end a reply once
// its text ends with one of them; --color marks the prompt and the user's input on a terminal.
struct ReplyStyle {
  std::vector<std::string> reverse_prompts;
  bool color = false;
};

// Terminal colours of llama-cli's --color: the prompt and the user's input stand out from replies.
constexpr const char* kPromptColor = "\x1b[33m";
constexpr const char* kInputColor = "\x1b[1;32m";
constexpr const char* kResetColor = "\x1b[0m";

// Streams one reply to stdout; returns why generation stopped (Cancelled: a reverse prompt).
StopReason stream_reply(Session& session, std::span<const float> logits, Sampler& sampler,
                        const GenerateOptions& gen, const ReplyStyle& style, std::string* reply) {
  const Tokenizer& tok = *session.model().tokenizer;
  Utf8Stream out;
  std::string text;
  const StopReason reason = generate(session, logits, sampler, gen, [&](int32_t id) {
    const std::string piece = tok.token_to_piece(id);
    text += piece;
    if (reply) *reply += piece;
    std::fputs(out.push(piece).c_str(), stdout);
    std::fflush(stdout);
    for (const std::string& r : style.reverse_prompts)
      if (text.size() >= r.size() && text.compare(text.size() - r.size(), r.size(), r) == 0) return false;
    return true;
  });
  std::fputs(out.flush().c_str(), stdout);
  std::fflush(stdout);
  if (reason == StopReason::ContextFull)
    std::fprintf(stderr, "\n[context full after %lld tokens: generation stopped; raise -c, or pass --context-shift]\n",
                 (long long)session.n_ctx());
  return reason;
}

// Evaluates the prompt tokens and streams one reply, with a telemetry event for each phase.
StopReason reply(Session& session, std::span<const int32_t> ids, Sampler& sampler, const GenerateOptions& gen,
                 const ReplyStyle& style, std::string* text, Telemetry& telemetry, int turn) {
  const Timings before = session.timings;
  const auto logits = session.set_tokens(ids);
  emit_prompt(telemetry, before, session.timings, turn);
  const Timings prompt_done = session.timings;
  const StopReason r = stream_reply(session, logits, sampler, gen, style, text);
  emit_generated(telemetry, prompt_done, session.timings, turn, r);
  return r;
}

// One chat turn read from stdin at most (a stream without newlines must not grow without end).
constexpr size_t kMaxChatLine = 1 << 20;

// The next line the user types (prompt `marker` first); false at the end of input.
bool read_user_line(const char* marker, const ReplyStyle& style, std::string& line) {
  std::fputs(marker, stdout);
  if (style.color) std::fputs(kInputColor, stdout);
  std::fflush(stdout);
  const LineStatus got = read_bounded_line(std::cin, kMaxChatLine, line);
  if (style.color) {
    std::fputs(kResetColor, stdout);
    std::fflush(stdout);
  }
  if (got == LineStatus::TooLong)
    throw Error("a chat line is longer than " + std::to_string(kMaxChatLine) +
                " bytes (the limit of one turn; put long text in a file and pass it with -f)");
  return got == LineStatus::Line;
}

[[noreturn]] void context_full(const Session& session) {
  throw Error("the context (" + std::to_string(session.n_ctx()) +
              " tokens) is full: the conversation cannot go on; start again with a larger -c, or with "
              "--context-shift to drop the oldest tokens");
}

// --keep against the initial prompt's tokens, as llama-cli takes it: -1 (or more than the prompt)
// keeps the whole prompt; n keeps n tokens after a leading BOS, which always stays.
int64_t keep_count(int64_t keep, std::span<const int32_t> initial, const Tokenizer& tok) {
  const bool bos = !initial.empty() && tok.bos() >= 0 && initial.front() == tok.bos();
  return std::min<int64_t>(resolve_n_keep(keep, int64_t(initial.size()), bos), int64_t(initial.size()));
}

// --context-shift, a later turn: the tokens the session goes on with — what it holds, then `more`.
// When `more` does not fit after them the context is shifted first (keeping `keep` tokens and
// dropping half of the rest, or as many as `more` needs).
std::vector<int32_t> continue_with(Session& session, const std::vector<int32_t>& more, int64_t keep) {
  const int64_t n_ctx = session.n_ctx(), held = int64_t(session.tokens().size()), n = int64_t(more.size());
  if (held + n > n_ctx) {
    if (keep + 4 + n > n_ctx)
      throw Error("this turn is " + std::to_string(n) + " tokens: after the " + std::to_string(keep) +
                  " kept ones (--keep) it does not fit in the context of " + std::to_string(n_ctx) +
                  " tokens; start again with a larger -c");
    const ContextShift half = plan_context_shift(held, keep);
    session.shift_context(keep, std::max(half.n_discard, held + n - n_ctx));
  }
  std::vector<int32_t> ids = session.tokens();
  ids.insert(ids.end(), more.begin(), more.end());
  return ids;
}

// The text a chat goes on with after a reply as it was generated: the template's end of the
// assistant's turn, then the user's turn and the generation prompt — what a rendering of the whole
// conversation adds after the reply (every format renders each message on its own).
std::string next_turn_text(ChatFormat format, const std::string& user) {
  const std::string mark = "\x1e";  // a byte no template writes or trims
  const ChatMessage reply[] = {{"assistant", mark}}, turn[] = {{"user", user}};
  const std::string end = apply_chat_template(format, reply, false);
  return end.substr(end.find(mark) + mark.size()) + apply_chat_template(format, turn, true);
}

// -cnv: turns through the model's chat template. `single_turn` (-st): one reply, then exit.
// `chat_format`: --chat-template, else the model's own. With --context-shift the first turn is the
// rendered conversation, and every later one continues the session's tokens (shifted when full)
// with the text that follows the reply (next_turn_text); --keep counts from the rendered system
// prompt.
int conversation(Session& session, Sampler& sampler, GenerateOptions gen, const ReplyStyle& style,
                 const std::string& system_prompt, std::optional<ChatFormat> chat_format, const std::string& first,
                 bool single_turn, int64_t keep, Telemetry& telemetry) {
  const Model& m = *&session.model();
  const Tokenizer& tok = *m.tokenizer;
  const ChatFormat format = chat_format.value_or(detect_chat_format(tok.data().chat_template, m.hp.arch.name));
  std::vector<ChatMessage> messages;
  if (!system_prompt.empty()) messages.push_back({"system", system_prompt});
  gen.n_keep = keep_count(keep, tok.encode(apply_chat_template(format, messages, false), true, true), tok);
  std::string line = first;
  bool have_line = !first.empty();
  int turn = 0;
  for (;;) {
    if (!have_line && !read_user_line("\n> ", style, line)) break;
    have_line = false;
    if (line.empty()) continue;
    messages.push_back({"user", line});
    std::vector<int32_t> ids;
    if (gen.context_shift && turn > 0) {
      ids = continue_with(session, tok.encode(next_turn_text(format, line), false, true), gen.n_keep);
    } else {
      ids = tok.encode(apply_chat_template(format, messages, true), true, true);
      // A later turn that no longer fits: the conversation filled the context.
      if (turn > 0 && int64_t(ids.size()) > session.n_ctx()) context_full(session);
    }
    std::string answer;
    const StopReason r = reply(session, ids, sampler, gen, style, &answer, telemetry, turn++);
    messages.push_back({"assistant", answer});
    if (r == StopReason::ContextFull) context_full(session);
    if (single_turn) break;
  }
  std::fputc('\n', stdout);
  return 0;
}

// -i / -if: llama-cli's raw interactive mode. The text so far (prompt, replies and the user's
// lines) is the context; each reply runs until a reverse prompt, the end of text or -n tokens, then
// the user's next line is appended. `input_first` (-if): the user speaks before the first reply.
// With --context-shift every turn after the first continues the session's tokens (shifted when
// full) with the user's line; --keep counts from the prompt.
int interactive(Session& session, Sampler& sampler, GenerateOptions gen, const ReplyStyle& style,
                const std::string& prompt, bool input_first, bool display_prompt, int64_t keep, Telemetry& telemetry) {
  const Tokenizer& tok = *session.model().tokenizer;
  gen.n_keep = keep_count(keep, tok.encode(prompt, true, true), tok);
  std::string transcript = prompt;
  if (display_prompt) {
    if (style.color) std::fputs(kPromptColor, stdout);
    std::fputs(prompt.c_str(), stdout);
    if (style.color) std::fputs(kResetColor, stdout);
    std::fflush(stdout);
  }
  bool need_input = input_first || prompt.empty();
  for (int turn = 0;; ++turn) {
    std::string line;
    if (need_input) {
      if (!read_user_line("", style, line)) break;
      transcript += line + "\n";
    }
    std::vector<int32_t> ids;
    if (gen.context_shift && turn > 0) {
      ids = continue_with(session, tok.encode(line + "\n", false, true), gen.n_keep);
    } else {
      ids = tok.encode(transcript, true, true);
      if (turn > 0 && int64_t(ids.size()) > session.n_ctx()) context_full(session);
    }
    std::string answer;
    const StopReason r = reply(session, ids, sampler, gen, style, &answer, telemetry, turn);
    transcript += answer;
    if (r == StopReason::ContextFull) context_full(session);
    need_input = true;
  }
  std::fputc('\n', stdout);
  return 0;
}

int generate_text(RunOptions& o, const RunConfig& config, Telemetry& telemetry) {
  if (!o.prompt_file.empty()) o.prompt = read_text_input(o.prompt_file, "prompt file");
  o.sampling.seed = o.seed != UINT64_MAX
                        ? o.seed
                        : uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  telemetry.emit("run_started", {{"config", to_json(config)}, {"seed", o.sampling.seed},
                                 {"hardware_threads", hardware_threads()}});
  LoadedModel lm = load_for_run(o.model);
  refuse_embedding_model(*lm.model);
  if (!lm.model->tokenizer) throw Error("model has no tokenizer");
  const HParams& hp = lm.model->hp;
  telemetry.emit("model_loaded", {{"model", lm.model->file.path()}, {"architecture", hp.arch.name},
                                  {"n_layer", hp.n_layer}, {"weight_bytes", lm.model->weight_bytes()},
                                  {"load_ms", lm.load_ms}, {"threads", lm.threads}, {"ctx_size", lm.ctx}});
  Session session(*lm.model, lm.ctx, lm.threads, o.model.batch, lm.cache.k, lm.cache.v);
  session.timings.load_ms = lm.load_ms;
  Sampler sampler(o.sampling);
  GenerateOptions gen{o.n_predict, o.ignore_eos};
  gen.context_shift = config.context_shift;
  std::unique_ptr<GrammarConstraint> constraint;
  if (o.parsed_grammar) {
    constraint = std::make_unique<GrammarConstraint>(o.parsed_grammar,
                                                     std::make_shared<GrammarVocab>(*lm.model->tokenizer));
    gen.grammar = constraint.get();
  }
  std::fprintf(stderr, "sampling: temp %.2f, top-k %d, top-p %.2f, min-p %.2f, repeat-penalty %.2f, seed %llu\n\n",
               o.sampling.temperature, o.sampling.top_k, o.sampling.top_p, o.sampling.min_p,
               o.sampling.repeat_penalty, (unsigned long long)o.sampling.seed);

  ReplyStyle style{o.reverse_prompts, o.color && isatty(STDOUT_FILENO)};
  int rc = 0;
  if (o.conversation) {
    rc = conversation(session, sampler, gen, style, o.system_prompt, chat_template_option(o.chat_template), o.prompt,
                      o.single_turn, o.keep, telemetry);
  } else if (o.interactive || o.interactive_first) {
    rc = interactive(session, sampler, gen, style, o.prompt, o.interactive_first, !o.no_display_prompt, o.keep,
                     telemetry);
  } else {
    const auto ids = lm.model->tokenizer->encode(o.prompt, true, true);
    gen.n_keep = keep_count(o.keep, ids, *lm.model->tokenizer);
    if (!o.no_display_prompt) {
      if (style.color) std::fputs(kPromptColor, stdout);
      std::fputs(o.prompt.c_str(), stdout);
      if (style.color) std::fputs(kResetColor, stdout);
      std::fflush(stdout);
    }
    reply(session, ids, sampler, gen, style, nullptr, telemetry, 0);
    std::fputc('\n', stdout);
  }
  print_timings(session.timings);
  const Timings& t = session.timings;
  telemetry.emit("run_totals", {{"prompt_tokens", t.prompt_tokens}, {"prompt_ms", t.prompt_ms},
                                {"generated_tokens", t.sampled}, {"eval_ms", t.eval_ms}, {"sample_ms", t.sample_ms},
                                {"total_ms", t.load_ms + t.prompt_ms + t.eval_ms + t.sample_ms}});
  return rc;
}

}  // namespace

int cmd_run(int argc, char** argv) {
  RunOptions o;
  ArgParser p("bitnet run", "Generate text with a BitNet / ternary model (llama-cli compatible flags).");
  add_model_options(p, o.model, /*grammar_flags=*/true);
  p.option({"-p", "--prompt"}, "TEXT", "prompt", &o.prompt);
  p.option({"-f", "--file"}, "FILE", "read the prompt from a file", &o.prompt_file);
  p.option({"-n", "--n-predict"}, "N", "tokens to generate (-1: until end of text or full context)",
           &o.n_predict);
  add_sampling_options(p, o.sampling);
  p.option({"-s", "--seed"}, "N", "random seed (-1: from the clock)", &o.seed);
  p.flag({"-cnv", "--conversation"}, "chat mode: read user turns from stdin, use the chat template", &o.conversation);
  p.flag({"-no-cnv", "--no-conversation"}, "plain completion of the prompt (the default)", &o.no_conversation);
  p.flag({"-st", "--single-turn"}, "with -cnv: answer one turn (the -p prompt, else one line of stdin), then exit",
         &o.single_turn);
  p.flag({"-i", "--interactive"}, "after each reply (ended by -r, end of text or -n), read a line from stdin and "
         "continue the text with it", &o.interactive);
  p.flag({"-if", "--interactive-first"}, "like -i, but read the first line before generating", &o.interactive_first);
  p.multi_option({"-r", "--reverse-prompt"}, "TEXT", "end a reply when its text ends with TEXT (repeatable; with -i "
                 "the user speaks next)", &o.reverse_prompts);
  p.flag({"-e", "--escape"}, "process escapes (\\n, \\t, \\xHH, ...) in -p, -sys and -r (the default)", &o.escape);
  p.flag({"--no-escape"}, "take -p, -sys and -r literally", &o.no_escape);
  p.flag({"--color", "-co"}, "on a terminal, colour the prompt and the user's input", &o.color);
  p.option({"-sys", "--system-prompt"}, "TEXT", "system prompt for chat mode", &o.system_prompt);
  p.option({"--chat-template"}, "NAME|TEMPLATE", kChatTemplateHelp, &o.chat_template);
  p.flag({"--ignore-eos"}, "keep generating past end-of-text tokens", &o.ignore_eos);
  p.flag({"--context-shift"}, "when the context is full, keep the --keep first tokens, drop half of the rest and go on "
         "(a chat then never runs out of context)", &o.context_shift);
  p.flag({"--no-context-shift"}, "a full context ends the reply; a chat or -i session then exits with an error (the "
         "default)", &o.no_context_shift);
  p.option({"--keep"}, "N", "with --context-shift: tokens of the initial prompt (-cnv: the system prompt) that always "
           "stay, after the BOS (default 0; -1: all of it)", &o.keep);
  p.flag({"--no-display-prompt"}, "do not echo the prompt", &o.no_display_prompt);
  p.flag({"--dry-run"}, "print the resolved configuration and the argument list; load nothing", &o.dry_run);
  p.flag({"--json"}, "with --dry-run: print one JSON object", &o.json);
  add_grammar_options(p, o.grammar, "only generate what it allows");
  p.option({"--telemetry-out"}, "FILE", "append JSONL telemetry events (docs/telemetry.md)", &o.telemetry_out);
  add_otlp_option(p, &o.otlp_endpoint);
  if (!p.parse(argc, argv)) return 0;
  if (o.escape && o.no_escape) throw UsageError("give either -e or --no-escape");
  if (o.conversation && o.no_conversation) throw UsageError("give either -cnv or -no-cnv");
  if (o.conversation && (o.interactive || o.interactive_first))
    throw UsageError("-i/-if continue raw text; -cnv uses the chat template: give one of them");
  if (o.single_turn && !o.conversation) throw UsageError("-st goes with -cnv");
  if (!o.chat_template.empty() && !o.conversation) throw UsageError("--chat-template goes with -cnv");
  chat_template_option(o.chat_template);  // a bad name fails before the model loads
  if (!o.no_escape) {
    o.prompt = process_escapes(o.prompt);
    o.system_prompt = process_escapes(o.system_prompt);
    for (std::string& r : o.reverse_prompts) r = process_escapes(r);
  }

  const RunConfig config = to_run_config(o);
  try {
    validate(config);
  } catch (const ConfigError& e) {
    throw UsageError(e.what());
  }
  if (o.json && !o.dry_run) throw UsageError("--json goes with --dry-run");
  if ((o.conversation || o.interactive || o.interactive_first) && o.grammar.given())
    throw UsageError("a grammar constrains one completion: it does not go with -cnv, -i or -if");
  // Read, converted and parsed before the model loads, so that a bad grammar fails fast.
  if (const std::string text = resolve_grammar(o.grammar); !text.empty()) o.parsed_grammar = Grammar::parse(text);
  if (o.dry_run) return dry_run(config, o.json, cache_types(o.model));
  const TelemetrySetup telemetry_setup = open_telemetry({o.telemetry_out, o.otlp_endpoint}, "run");
  Telemetry& telemetry = *telemetry_setup.telemetry;
  try {
    const int rc = generate_text(o, config, telemetry);
    telemetry.emit("run_finished", {{"exit_code", rc}});
    return rc;
  } catch (const std::exception& e) {
    telemetry.emit("run_failed", {{"error", e.what()}, {"exit_code", dynamic_cast<const UsageError*>(&e) ? 2 : 1}});
    throw;
  }
}

namespace {
const CommandRegistration kRegistration({"run", "llama-cli", cmd_run, "generate text from a prompt (llama-cli flags)", 10});
}  // namespace

}  // namespace bitnet::cli
