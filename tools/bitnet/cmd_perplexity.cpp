// `bitnet perplexity` / `llama-perplexity`: perplexity over chunks of a text file, scored like
// llama-perplexity (each chunk starts with BOS; the second half of each chunk is scored).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "model_options.h"

namespace bitnet::cli {

int cmd_perplexity(int argc, char** argv) {
  ModelOptions mo;
  std::string file;
  int64_t max_chunks = -1;
  ArgParser p("bitnet perplexity", "Perplexity of a model on a text file (llama-perplexity compatible).");
  add_model_options(p, mo);
  p.option({"-f", "--file"}, "FILE", "text file to score", &file);
  p.option({"--chunks"}, "N", "score at most N chunks (-1: all)", &max_chunks);
  if (!p.parse(argc, argv)) return 0;
  if (file.empty()) throw UsageError("missing -f FILE");
  const std::string text = read_text_input(file, "text file");

  if (mo.ctx == 0) mo.ctx = 512;  // llama-perplexity's customary chunk size
  // Each chunk scores its second half (positions ctx/2 … ctx−2): below 4 that is nothing at all.
  if (mo.ctx > 0 && mo.ctx < 4) throw UsageError("-c must be at least 4 for perplexity (each chunk scores its second half)");
  if (max_chunks == 0) throw UsageError("--chunks must be -1 (all) or at least 1");
  LoadedModel lm = load_for_run(mo);
  refuse_embedding_model(*lm.model);
  const Tokenizer& tok = *lm.model->tokenizer;
  const auto tokens = tok.encode(text, true, false);
  const int64_t n_ctx = lm.ctx;
  if (int64_t(tokens.size()) < 2 * n_ctx)
    throw Error("you need at least " + std::to_string(2 * n_ctx) +
                " tokens to evaluate perplexity with a context of " + std::to_string(n_ctx) +
                " (the file has " + std::to_string(tokens.size()) + ")");
  int64_t n_chunks = int64_t(tokens.size()) / n_ctx;
  if (max_chunks >= 0) n_chunks = std::min(n_chunks, max_chunks);
  std::fprintf(stderr, "perplexity: %zu tokens, %lld chunks of %lld, batch %lld\n", tokens.size(),
               (long long)n_chunks, (long long)n_ctx, (long long)mo.batch);

  Session session(*lm.model, n_ctx, lm.threads, mo.batch, lm.cache.k, lm.cache.v);
  session.timings.load_ms = lm.load_ms;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    if (tok.add_bos()) chunk[0] = tok.bos();
    for (const double token_nll : chunk_nll(session, chunk)) {
      nll += token_nll;
      nll2 += token_nll * token_nll;
      ++count;
    }
    std::printf("[%lld]%.4lf,", (long long)(c + 1), std::exp(nll / double(count)));
    std::fflush(stdout);
  }
  const double mean = nll / double(count);
  const double var = nll2 / double(count) - mean * mean;
  const double ppl = std::exp(mean);
  const double err = count > 1 ? ppl * std::sqrt(std::max(0.0, var) / double(count - 1)) : 0.0;
  std::printf("\nFinal estimate: PPL = %.4lf +/- %.5lf\n", ppl, err);
  std::printf("Mean negative log-likelihood: %.6lf nats/token over %lld tokens\n", mean, (long long)count);
  print_timings(session.timings);
  return 0;
}

namespace {
const CommandRegistration kRegistration({"perplexity", "llama-perplexity", cmd_perplexity, "perplexity of a text file (llama-perplexity flags)", 20});
}  // namespace

}  // namespace bitnet::cli
