#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (scripts/fuzz.sh), generated here rather than stored:
small valid inputs of each format, so the fuzzer starts from the interesting paths.

  python3 fuzz/make_seeds.py OUT_DIR     (writes OUT_DIR/<target>/seed-N)

Standard library only. The GGUF seeds are complete tiny models of the three architectures
(every key and tensor the loader needs, a 24-token SentencePiece-style vocabulary), written
with the same field layout as shared/spec's GGUF description.
"""

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("BITNET_SHARED_DATA") or os.path.join(HERE, "..", "data")  # data/README.md

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_value(kind, v):
    if kind == STR:
        return gguf_string(v)
    if kind == ARR:
        sub, items = v
        out = struct.pack("<IQ", sub, len(items))
        return out + b"".join(gguf_value(sub, x) for x in items)
    fmt = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q", F64: "d"}[kind]
    return struct.pack("<" + fmt, v)


def gguf_file(kvs, tensors):
    """kvs: [(key, kind, value)]; tensors: [(name, dims, ggml_type, bytes)] (F32 = 0, F16 = 1)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for key, kind, value in kvs:
        out += gguf_string(key) + struct.pack("<I", kind) + gguf_value(kind, value)
    offset = 0
    for name, dims, ggml_type, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
        offset += (len(data) + 31) // 32 * 32
    out += b"\0" * ((-len(out)) % 32)
    for _, _, _, data in tensors:
        out += data + b"\0" * ((-len(data)) % 32)
    return bytes(out)


def f32_tensor(n, scale=0.02):
    return b"".join(struct.pack("<f", scale * (((i * 7919) % 23) - 11)) for i in range(n))


def tiny_model(arch):
    """A loadable model: d 32, 1 layer, 2 heads, FFN 64, vocabulary of 24 tokens, F32 weights."""
    d, ff, vocab, heads = 32, 64, 24, 2
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in (0x0A, 0x20, 0x41)] + \
             ["\u2581", "\u2581the", "\u2581a", "e", "t", "h", "a", "\u2581b", "o", "n", "s", "r", "i", "l", "d", "c", "u", "m"]
    tokens = tokens[:vocab]
    kvs = [
        ("general.architecture", STR, arch),
        ("general.name", STR, "fuzz-seed"),
        (arch + ".context_length", U32, 64),
        (arch + ".embedding_length", U32, d),
        (arch + ".block_count", U32, 1),
        (arch + ".feed_forward_length", U32, ff),
        (arch + ".attention.head_count", U32, heads),
        (arch + ".attention.head_count_kv", U32, heads),
        (arch + ".attention.layer_norm_rms_epsilon", F32, 1e-5),
        (arch + ".rope.freq_base", F32, 10000.0),
        (arch + ".rope.dimension_count", U32, d // heads),
        ("tokenizer.ggml.model", STR, "llama"),
        ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
        ("tokenizer.ggml.scores", ARR, (F32, [-float(i) for i in range(vocab)])),
        ("tokenizer.ggml.token_type", ARR, (I32, [2, 3, 3] + [6] * 3 + [1] * (vocab - 6))),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.chat_template", STR, "{% for m in messages %}{{ m['content'] }}{% endfor %}"),
    ]
    tensors = [("token_embd.weight", [d, vocab], 0, f32_tensor(d * vocab)),
               ("output_norm.weight", [d], 0, f32_tensor(d, 1.0)),
               ("output.weight", [d, vocab], 0, f32_tensor(d * vocab))]
    blk = "blk.0."
    tensors += [(blk + "attn_norm.weight", [d], 0, f32_tensor(d, 1.0)), (blk + "ffn_norm.weight", [d], 0, f32_tensor(d, 1.0))]
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        tensors.append((blk + name + ".weight", [d, d], 0, f32_tensor(d * d)))
    tensors += [(blk + "ffn_gate.weight", [d, ff], 0, f32_tensor(d * ff)), (blk + "ffn_up.weight", [d, ff], 0, f32_tensor(d * ff)),
                (blk + "ffn_down.weight", [ff, d], 0, f32_tensor(d * ff))]
    if arch == "bitnet-b1.58" or arch == "bitnet":
        tensors += [(blk + "attn_sub_norm.weight", [d], 0, f32_tensor(d, 1.0)),
                    (blk + "ffn_sub_norm.weight", [ff], 0, f32_tensor(ff, 1.0))]
    return gguf_file(kvs, tensors)


def safetensors_file(tensors):
    header, blob = {"__metadata__": {"format": "pt"}}, b""
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + blob


def seeds():
    out = {}
    out["fuzz_gguf"] = [tiny_model(a) for a in ("llama", "bitnet", "bitnet-b1.58")]
    out["fuzz_gguf"].append(gguf_file([("general.architecture", STR, "llama"), ("a.u64", U64, 1 << 40), ("a.i8", I8, -3),
                                       ("a.f64", F64, 0.5), ("a.bool", BOOL, True), ("a.nested", ARR, (ARR, []))], []))
    st = safetensors_file([("model.embed_tokens.weight", "F32", [4, 2], f32_tensor(8)),
                           ("model.layers.0.self_attn.q_proj.weight", "BF16", [2, 2], b"\x80\x3f" * 4)])
    config = {"architectures": ["BitNetForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 128, "vocab_size": 32000,
              "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "relu2",
              "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2}
    llama = dict(config, architectures=["LlamaForCausalLM"], hidden_act="silu", tie_word_embeddings=False)
    out["fuzz_safetensors"] = [b"\x01" + st, b"\x00" + json.dumps(config).encode(), b"\x00" + json.dumps(llama).encode()]
    texts = []
    for name in ("ggml-vocab-llama-bpe.gguf.inp", "ggml-vocab-llama-spm.gguf.inp"):
        path = os.path.join(DATA, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                texts += [t for t in f.read().split("\n__ggml_vocab_test__\n") if t][:20]
    texts += ["Hello world", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "\u00e9\u4e2d\U0001F600 12345"]
    out["fuzz_tokenizer"] = [bytes([flags]) + t.encode() for t in texts for flags in (0, 1, 2, 3)]
    tik = os.path.join(DATA, "llama3-tokenizer.tiktoken")
    if os.path.exists(tik):
        with open(tik, "rb") as f:
            lines = f.read().split(b"\n")
        out["fuzz_tiktoken"] = [b"\n".join(lines[:300]) + b"\n", b"\n".join(lines[1000:1100])]
    else:
        out["fuzz_tiktoken"] = [b"IQ== 0\nIg== 1\n"]
    out["fuzz_chat"] = [b"\0".join(x) for x in (
        [b"{% for message in messages %}<|start_header_id|>", b"llama", b"system", b"Be brief.", b"user", b"Hi"],
        [b"BITNETAssistant", b"bitnet-b1.58", b"user", b"2+2?", b"assistant", b"4"],
        [b"", b"falcon", b"user", b"x"])]
    out["fuzz_http"] = [
        b"POST /completion HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        json.dumps({"prompt": "Hello", "n_predict": 8, "temperature": 0.7, "stream": True, "stop": ["\n", "."]}).encode(),
        json.dumps({"prompt": [1, 2, 3], "max_tokens": 4, "top_p": 0.9, "id_slot": 0}).encode(),
        json.dumps({"tokens": [5, 6, 7], "content": "text"}).encode(),
        json.dumps({"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"5": 1.5}}).encode()]
    out["fuzz_args"] = [b"\0".join(x) for x in (
        [b"-m", b"model.gguf", b"-n", b"16", b"-t", b"2", b"--temp", b"0.8"],
        [b"--seed=42", b"-p", b"128,256", b"-p", b"512", b"-cnv", b"input.txt"],
        [b"--threads", b"-1", b"--n-predict", b"12abc", b"--help"])]
    metrics = (b"# HELP bitnet_requests_total Requests.\n# TYPE bitnet_requests_total counter\nbitnet_requests_total 5\n"
               b"# TYPE bitnet_queue_length gauge\nbitnet_queue_length{slot=\"0\"} 2\n"
               b"# TYPE bitnet_time_to_first_token_seconds histogram\n"
               b"bitnet_time_to_first_token_seconds_bucket{le=\"0.1\"} 1\n"
               b"bitnet_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"
               b"bitnet_time_to_first_token_seconds_sum 0.9\nbitnet_time_to_first_token_seconds_count 3\n")
    out["fuzz_metrics"] = [metrics, b"x 1e308\ny NaN\nz +Inf 1700000000\n"]
    out["fuzz_http_client"] = [
        b"\x01\x00http://127.0.0.1:4318", b"\x01\x00http://[::1]:8080/metrics", b"\x01\x00https://collector:99999",
        b"\x0a\x03HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"\x0c\x05HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\n0\r\nT: 1\r\n\r\n",
        b"\x0e\x01HTTP/1.0 100 Continue\r\n\r\nHTTP/1.0 500 Oops\nServer: x\n\nuntil close"]
    out["fuzz_lines"] = [b"\x10Hi there\nSecond question\r\n\n", b"\x03" + b"\x1b]0;t\x07\xc2\x9b\xff\xe2\x80\xae\n" * 3]
    out["fuzz_endpoints"] = [
        b"\x00" + json.dumps({"prompt": "And it came to pass", "n_predict": 3, "stream": True}).encode(),
        b"\x04" + json.dumps({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                               "max_tokens": 2, "stream": True, "stream_options": {"include_usage": True}}).encode(),
        b"\x02" + json.dumps({"prompt": ["In the", "beginning"], "max_tokens": 2, "stop": ["\n"], "seed": 3}).encode(),
        b"\x06" + json.dumps({"content": "In the beginning", "add_special": True, "with_pieces": True}).encode(),
        b"\x08" + json.dumps({"tokens": [1, 2, 3, 4000]}).encode(),
        b"\x0a" + json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(),
        b"\x2c", b"\x2e", b"\x30",
        b"\x01POST /completion HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\n{\"prompt\":\"Hi\",\"n_probs\":3,\"x\":1}"]
    # GBNF, a 0x00, then text to match (fuzz_grammar.cpp).
    out["fuzz_grammar"] = [
        b'root ::= expr\nexpr ::= term ("+" term)*\nterm ::= [0-9]+ | "(" expr ")"\n\x00(1+23)+4',
        b'root ::= "{" ws "\\"a\\":" ws num ws "}"\nnum ::= "-"? [0-9]{1,5}\nws ::= [ \\t\\n]?  # comment\n\x00{ "a": -12 }',
        b'root ::= [^"\\\\\\x00-\\x1f]* "\\u00e9" [\\U0001F600-\\U0001F64F]+ .\x00abc\xc3\xa9\xf0\x9f\x98\x80z',
        b'root ::= a{2,3} b?\na ::= "x" | "y"\nb ::= "\\n"\x00xyx\n',
        b'root ::= root "a" | "b"\x00ba',
        b'root ::= ("a" | "a")*\x00' + b"a" * 64]
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_seeds.py OUT_DIR")
    for target, items in seeds().items():
        d = os.path.join(sys.argv[1], target)
        os.makedirs(d, exist_ok=True)
        for i, data in enumerate(items):
            with open(os.path.join(d, "seed-%d" % i), "wb") as f:
                f.write(data)
    print("seeds written to %s" % sys.argv[1], file=sys.stderr)


if __name__ == "__main__":
    main()
