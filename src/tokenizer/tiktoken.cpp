// Llama-3 vocabulary from a tiktoken ranks file (tokenizers.md §3.2).
#include <algorithm>
#include <fstream>
#include <sstream>

#include "errors.h"
#include "tokenizer/flat_map.h"
#include "tokenizer/internal.h"

namespace bitnet {
namespace {

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with padding. false on malformed input.
bool b64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + static_cast<size_t>(k)];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad) return false;  // data after padding
        v[k] = b64_value(c);
        if (v[k] < 0) return false;
      }
    }
    const uint32_t w = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                       (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out.push_back(static_cast<char>(w >> 16));
    if (pad < 2) out.push_back(static_cast<char>((w >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(w & 0xFF));
  }
  return true;
}

std::string special_name(int32_t i) {  // i = id - 128000
  switch (i) {
    case 0: return "<|begin_of_text|>";
    case 1: return "<|end_of_text|>";
    case 6: return "<|start_header_id|>";
    case 7: return "<|end_header_id|>";
    case 9: return "<|eot_id|>";
    default: break;
  }
  const int32_t r = i < 6 ? i - 2 : i == 8 ? 4 : i - 5;
  return "<|reserved_special_token_" + std::to_string(r) + "|>";
}

}  // namespace

VocabData vocab_from_tiktoken(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open tiktoken file '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string content = ss.str();

  // Ranks are dense (0..N-1, one per line), so none can reach the number of lines: refusing those
  // early keeps a tiny file that claims a huge rank from allocating millions of entries.
  const size_t max_entries = static_cast<size_t>(std::count(content.begin(), content.end(), '\n')) + 1;
  std::vector<std::string> raw;  // raw bytes by rank
  std::vector<bool> seen;
  std::string bytes;
  size_t line_no = 0;
  for (size_t pos = 0; pos < content.size();) {
    size_t eol = content.find('\n', pos);
    if (eol == std::string::npos) eol = content.size();
    std::string_view line(content.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    auto bad = [&](const std::string& why) {
      return FormatError(path + ":" + std::to_string(line_no) + ": " + why);
    };
    if (sp == std::string_view::npos) throw bad("expected '<base64> <rank>'");
    if (!b64_decode(line.substr(0, sp), bytes)) throw bad("invalid base64");
    const std::string_view rs = line.substr(sp + 1);
    if (rs.empty() || rs.size() > 9 || !std::all_of(rs.begin(), rs.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw bad("invalid rank");
    const size_t rank = std::stoul(std::string(rs));
    if (rank >= 10'000'000) throw bad("rank too large");
    if (rank >= max_entries)
      throw bad("rank " + std::to_string(rank) + " is beyond the file's " + std::to_string(max_entries) +
                " lines (ranks must run 0..N-1)");
    if (rank >= raw.size()) {
      raw.resize(rank + 1);
      seen.resize(rank + 1, false);
    }
    if (seen[rank]) throw bad("duplicate rank " + std::to_string(rank));
    seen[rank] = true;
    raw[rank] = bytes;
  }
  if (raw.empty()) throw FormatError(path + ": no tokens");
  for (size_t i = 0; i < raw.size(); ++i)
    if (!seen[i]) throw FormatError(path + ": rank " + std::to_string(i) + " is missing");

  const auto n = static_cast<int32_t>(raw.size());
  VocabData v;
  v.model = "gpt2";
  v.pre = "llama-bpe";
  v.tokens.reserve(raw.size() + 256);
  for (const std::string& r : raw) v.tokens.push_back(tok::bytes_to_bpe_text(r));
  for (int32_t i = 0; i < 256; ++i) v.tokens.push_back(special_name(i));
  v.types.assign(v.tokens.size(), TokenType::NORMAL);
  std::fill(v.types.begin() + n, v.types.end(), TokenType::CONTROL);
  v.scores.assign(v.tokens.size(), 0.0f);
  v.bos = n;
  v.eos = n + 1;
  v.add_bos = true;
  v.add_eos = false;

  tok::TextIdMap rank_of;
  rank_of.reserve(raw.size());
  for (int32_t i = 0; i < n; ++i) rank_of.insert(raw[static_cast<size_t>(i)], i);
  std::vector<std::pair<int32_t, int32_t>> splits;
  v.merges.reserve(raw.size() * 5 / 2);
  for (int32_t t = 0; t < n; ++t) {
    const std::string_view tb = raw[static_cast<size_t>(t)];
    if (tb.size() < 2) continue;
    splits.clear();
    for (size_t k = 1; k < tb.size(); ++k) {
      const int32_t l = rank_of.find(tb.substr(0, k));
      if (l < 0) continue;
      const int32_t r = rank_of.find(tb.substr(k));
      if (r < 0) continue;
      splits.emplace_back(l, r);
    }
    std::sort(splits.begin(), splits.end());
    for (const auto& [l, r] : splits) {
      std::string m = v.tokens[static_cast<size_t>(l)];
      m += ' ';
      m += v.tokens[static_cast<size_t>(r)];
      v.merges.push_back(std::move(m));
    }
  }
  return v;
}

}  // namespace bitnet
