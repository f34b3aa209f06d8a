#pragma once
// A batch of tokens for one forward pass. Tokens may belong to several sequences; each token
// carries its sequence id and its position in that sequence's KV cache. Prompt processing
// (many tokens of one sequence) and multi-stream decoding (one token of many sequences) are the
// same call.
#include <cstdint>
#include <vector>

namespace bitnet {

struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<int32_t> seq_ids;
  std::vector<uint8_t> want_logits;

  void add(int32_t token, int32_t pos, int32_t seq, bool logits) {
    tokens.push_back(token);
    positions.push_back(pos);
    seq_ids.push_back(seq);
    want_logits.push_back(logits ? 1 : 0);
  }
  void clear() { *this = Batch{}; }
  int64_t size() const { return int64_t(tokens.size()); }
  int64_t n_logits() const {
    int64_t n = 0;
    for (uint8_t w : want_logits) n += w;
    return n;
  }
};

}  // namespace bitnet
