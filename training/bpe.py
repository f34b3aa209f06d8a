"""Byte-level BPE (GPT-2 style bytes, Llama-3 split regex): trainer, encoder and tokenizer.json.

The engine reads the result through `bitnet convert` (tokenizer.json → GGUF `gpt2` vocabulary
with `tokenizer.ggml.pre = llama-bpe`), so the split rule here must be the Llama-3 regex. Python's
`re` has no \\p{L}/\\p{N}; for ASCII text (the corpus is checked to be ASCII) the classes below are
exactly the same sets, which the test suite confirms by comparing our ids with `bitnet tokenize`.
"""
import heapq
import json
import re
from collections import Counter, defaultdict

# tokenizers.md §2.3, with \p{L} → [A-Za-z] and \p{N} → [0-9] (exact on ASCII input).
_L, _N = "A-Za-z", "0-9"
SPLIT = re.compile(
    rf"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n{_L}{_N}]?[{_L}]+|[{_N}]{{1,3}}| ?[^\s{_L}{_N}]+[\r\n]*"
    rf"|\s*[\r\n]+|\s+(?!\S)|\s+")
# The same regex as tokenizer.json states it (the engine's kLlama3Regex).
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"


def byte_to_unicode():
    """GPT-2's reversible byte → printable code point table (tokenizers.md §2.1)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_B2U = byte_to_unicode()


def pretokenize(text):
    if not text.isascii():
        raise ValueError("this trainer's split regex is exact for ASCII text only")
    return SPLIT.findall(text)


def _symbols(word):
    return tuple(_B2U[b] for b in word.encode("utf-8"))


def train(text, vocab_size, progress=None):
    """Learns vocab_size − 256 − 2 merges; returns (vocab list, merges list)."""
    n_merges = vocab_size - 256 - 2
    counts = Counter(pretokenize(text))
    words = [list(_symbols(w)) for w in counts]
    freq = [counts[w] for w in counts]
    pair_count = defaultdict(int)
    where = defaultdict(set)
    for i, syms in enumerate(words):
        for p in zip(syms, syms[1:]):
            pair_count[p] += freq[i]
            where[p].add(i)
    # Max-heap on (count, then the smaller pair first) with lazy invalidation: deterministic.
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    vocab = [_B2U[b] for b in range(256)]
    merges = []
    while len(merges) < n_merges and heap:
        c, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -c or c == 0:
            continue
        a, b = pair
        merged = a + b
        merges.append(pair)
        vocab.append(merged)
        changed = defaultdict(int)
        for i in where.pop(pair, ()):
            syms = words[i]
            if len(syms) < 2:
                continue
            out, j = [], 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == a and syms[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            if len(out) == len(syms):
                continue
            f = freq[i]
            for p in zip(syms, syms[1:]):
                pair_count[p] -= f
                changed[p] -= f
            for p in zip(out, out[1:]):
                pair_count[p] += f
                changed[p] += f
                where[p].add(i)
            words[i] = out
        pair_count.pop(pair, None)
        for p, d in changed.items():
            if d and p in pair_count and pair_count[p] > 0:
                heapq.heappush(heap, (-pair_count[p], p))
        if progress and len(merges) % 500 == 0:
            progress(len(merges), n_merges)
    if len(merges) < n_merges:
        raise SystemExit(f"the corpus supports only {len(merges)} merges; choose a smaller vocabulary")
    vocab += [BOS, EOS]
    return vocab, merges


class Encoder:
    def __init__(self, vocab, merges):
        self.ids = {t: i for i, t in enumerate(vocab)}
        self.rank = {p: r for r, p in enumerate(merges)}
        self.cache = {}
        self.bos = self.ids[BOS]
        self.eos = self.ids[EOS]

    def _word(self, word):
        syms = list(_symbols(word))
        while len(syms) > 1:
            best, at = None, -1
            for j in range(len(syms) - 1):  # lowest rank, leftmost on ties
                r = self.rank.get((syms[j], syms[j + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, j
            if best is None:
                break
            syms[at:at + 2] = [syms[at] + syms[at + 1]]
        return [self.ids[s] for s in syms]

    def encode(self, text, bos=True):
        out = [self.bos] if bos else []
        for w in pretokenize(text):
            ids = self.cache.get(w)
            if ids is None:
                ids = self.cache[w] = self._word(w)
            out.extend(ids)
        return out

    def decode(self, ids):
        u2b = {u: b for b, u in _B2U.items()}
        vocab = {i: t for t, i in self.ids.items()}
        data = bytearray()
        for i in ids:
            t = vocab[i]
            if t in (BOS, EOS):
                continue
            data += bytes(u2b[c] for c in t)
        return data.decode("utf-8", errors="replace")


def tokenizer_json(vocab, merges):
    bos, eos = vocab.index(BOS), vocab.index(EOS)
    return {
        "version": "1.0",
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True} for i, t in ((bos, BOS), (eos, EOS))],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(vocab) if t not in (BOS, EOS)},
                  "merges": [f"{a} {b}" for a, b in merges]},
    }


def write_tokenizer_files(out_dir, vocab, merges):
    import os
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": BOS, "eos_token": EOS, "add_bos_token": True, "add_eos_token": False,
                   "model_max_length": 1 << 20, "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=1)
