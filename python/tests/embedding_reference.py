"""Reference text embeddings of a Hugging Face Qwen3 / Gemma 3 checkpoint, computed with PyTorch
from the model math (docs/embeddings-conversion.md), not from the converter's output: the tests
compare what `bitnet convert` + `bitnet embed` give against these vectors.

Runs under Debian's /usr/bin/python3 (python3-torch, numpy); the project's own Python stays
standard-library only. Usage:

    /usr/bin/python3 embedding_reference.py CHECKPOINT_DIR --pooling last --ids 1,2,3 [--ids ...]

prints {"data": [vector, ...]} (pooling "none": one list of per-token vectors per input), each
vector L2-normalized (--normalize -1 leaves them as they are); with several poolings
(--pooling mean,last) "data" maps each pooling to that list.

What it computes, in float64 except where the engine's integer steps are reproduced:
  * BitNet checkpoints (a `.norm.weight` on every projection): BitLin(W, x) = (t · xq) · α / s with
    x' = RMSNorm(x; the projection's norm), s = 127 / max|x'| (max ≥ 1e-5, s rounded to f32),
    xq = clamp(round_half_even(f32(x') · s), -128, 127) in f32, α = f32(mean|W|) over the matrix,
    t = clamp(round_half_even(W / α), -1, 1).  Plain checkpoints: y = W x.
  * Qwen3: pre-norm attention with per-head q/k RMSNorm, NEOX RoPE, GQA, scale 1/sqrt(head_dim);
    SiLU-gated FFN.  Gemma 3: embeddings × f32(sqrt(d)); norms x·(1 + w); post-attention and
    post-FFN norms before each residual add; GELU (tanh); scale 1/sqrt(query_pre_attn_scalar);
    sliding layers see positions p' with p - W < p' <= p and use rope_local_base_freq.
  * Keys (after q/k norm and RoPE) and values are rounded to f16 before attention, as the engine's
    KV cache stores them (--kv-cache f32 keeps them exact). With BitNet models this matters beyond
    1e-4 in cosine: the f16 values feed the o projection's int8 quantization.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

F64 = torch.float64


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        shape = info["shape"]
        dt = info["dtype"]
        if dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4").copy()
        else:
            raise ValueError(f"{path}: tensor {name}: dtype {dt} not supported by the reference")
        out[name] = torch.from_numpy(arr.reshape(shape).copy())  # float32, as stored
    return out


def load_checkpoint(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for s in shards:
            tensors.update(load_safetensors(os.path.join(d, s)))
        return tensors
    return load_safetensors(os.path.join(d, "model.safetensors"))


def rms_norm(x, g, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g


class Model:
    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            self.cfg = c = json.load(f)
        self.gemma = c.get("model_type") == "gemma3_text"
        if not self.gemma and c.get("model_type") != "qwen3":
            raise ValueError(f"model_type {c.get('model_type')!r}: only qwen3 and gemma3_text")
        self.w = load_checkpoint(d)
        self.prefix = "model." if "model.embed_tokens.weight" in self.w else ""
        self.bitnet = (self.prefix + "layers.0.self_attn.q_proj.norm.weight") in self.w
        self.d = c["hidden_size"]
        self.n_layer = c["num_hidden_layers"]
        self.n_head = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads", self.n_head)
        self.hd = c.get("head_dim", 256 if self.gemma else 128)
        self.eps = c["rms_norm_eps"]
        self.theta = c.get("rope_theta", 1e6 if self.gemma else 1e4)
        if self.gemma:
            self.theta_swa = c.get("rope_local_base_freq", 1e4)
            self.window = c.get("sliding_window", 4096)
            types = c.get("layer_types")
            if types is None:
                p = c.get("sliding_window_pattern", c.get("_sliding_window_pattern", 6))
                types = ["full_attention" if (i + 1) % p == 0 else "sliding_attention" for i in range(self.n_layer)]
            self.sliding = [t == "sliding_attention" for t in types]
            self.scale = 1.0 / math.sqrt(c.get("query_pre_attn_scalar", 256))
        else:
            self.sliding = [False] * self.n_layer
            self.scale = 1.0 / math.sqrt(self.hd)
        self._tern = {}
        self.kv_f16 = True

    def t(self, name):
        return self.w[self.prefix + name]

    def norm(self, x, name):
        g = self.t(name).to(F64)
        return rms_norm(x, (1.0 + g) if self.gemma else g, self.eps)

    def ternary(self, name):
        if name not in self._tern:
            w = self.t(name)  # f32 master weights
            alpha = np.float32(max(float(w.to(F64).abs().mean()), 1e-5))
            t = torch.clamp(torch.round(w / torch.tensor(alpha, dtype=torch.float32)), -1, 1)
            self._tern[name] = (t.to(F64), float(alpha))
        return self._tern[name]

    def linear(self, x, proj):  # x: [n, k] float64; proj: "layers.i.self_attn.q_proj"
        if not self.bitnet:
            return x @ self.t(proj + ".weight").to(F64).t()
        xn = rms_norm(x, self.t(proj + ".norm.weight").to(F64), self.eps).to(torch.float32)
        amax = torch.clamp(xn.abs().max(-1, keepdim=True).values.to(F64), min=1e-5)
        s = (127.0 / amax).to(torch.float32)
        xq = torch.clamp(torch.round(xn * s), -128, 127).to(F64)
        t, alpha = self.ternary(proj + ".weight")
        return (xq @ t.t()) * alpha / s.to(F64)

    def rope(self, x, pos, theta):  # x: [n, heads, hd]; NEOX (rotate_half) pairing
        half = self.hd // 2
        inv = theta ** (-torch.arange(0, half, dtype=F64) * 2.0 / self.hd)
        ang = pos.to(F64)[:, None] * inv[None, :]
        cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)

    def attention(self, i, h):
        n = h.shape[0]
        p = f"layers.{i}.self_attn."
        q = self.linear(h, p + "q_proj").view(n, self.n_head, self.hd)
        k = self.linear(h, p + "k_proj").view(n, self.n_kv, self.hd)
        v = self.linear(h, p + "v_proj").view(n, self.n_kv, self.hd)
        q = self.norm(q, p + "q_norm.weight")
        k = self.norm(k, p + "k_norm.weight")
        pos = torch.arange(n)
        theta = self.theta_swa if self.gemma and self.sliding[i] else self.theta
        q, k = self.rope(q, pos, theta), self.rope(k, pos, theta)
        if self.kv_f16:  # the engine's KV cache (like llama.cpp's default) holds f16 keys and values
            k, v = k.to(torch.float16).to(F64), v.to(torch.float16).to(F64)
        group = self.n_head // self.n_kv
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) * self.scale
        qp, kp = pos[:, None], pos[None, :]
        allowed = kp <= qp
        if self.sliding[i]:
            allowed &= kp > qp - self.window
        scores = scores.masked_fill(~allowed[None], float("-inf"))
        out = torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v).reshape(n, self.n_head * self.hd)
        return self.linear(out, p + "o_proj")

    def ffn(self, i, h):
        p = f"layers.{i}.mlp."
        g = self.linear(h, p + "gate_proj")
        if self.gemma:
            act = 0.5 * g * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g ** 3)))
        else:
            act = g * torch.sigmoid(g)
        return self.linear(act * self.linear(h, p + "up_proj"), p + "down_proj")

    def hidden(self, ids):
        x = self.t("embed_tokens.weight")[torch.tensor(ids, dtype=torch.long)].to(F64)
        if self.gemma:
            x = x * float(np.float32(math.sqrt(self.d)))
        for i in range(self.n_layer):
            b = f"layers.{i}."
            a = self.attention(i, self.norm(x, b + "input_layernorm.weight"))
            if self.gemma:
                a = self.norm(a, b + "post_attention_layernorm.weight")
            x = x + a
            ffn_norm = "pre_feedforward_layernorm" if self.gemma else "post_attention_layernorm"
            f = self.ffn(i, self.norm(x, b + ffn_norm + ".weight"))
            if self.gemma:
                f = self.norm(f, b + "post_feedforward_layernorm.weight")
            x = x + f
        return self.norm(x, "norm.weight")


def normalize(v, p):
    if p < 0:
        return v
    if p == 2:
        n = torch.linalg.norm(v)
        return v / n if n > 0 else v
    raise ValueError("the reference implements --normalize -1 and 2 only")


def pool(h, pooling, norm=2):
    if pooling == "none":
        return [normalize(h[j], norm).tolist() for j in range(h.shape[0])]
    pooled = {"mean": lambda: h.mean(0), "cls": lambda: h[0], "last": lambda: h[-1]}[pooling]()
    return normalize(pooled, norm).tolist()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--pooling", required=True, help="none, mean, cls, last, or several joined by commas")
    ap.add_argument("--ids", action="append", required=True, help="comma-separated token ids of one input")
    ap.add_argument("--normalize", type=int, default=2)
    ap.add_argument("--kv-cache", choices=["f16", "f32"], default="f16",
                    help="precision of the keys and values attention reads (the engine's cache: f16)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    poolings = a.pooling.split(",")
    for p in poolings:
        if p not in ("none", "mean", "cls", "last"):
            ap.error(f"unknown pooling {p!r}")
    m = Model(a.checkpoint)
    m.kv_f16 = a.kv_cache == "f16"
    hidden = [m.hidden([int(t) for t in s.split(",")]) for s in a.ids]
    data = {p: [pool(h, p, a.normalize) for h in hidden] for p in poolings}
    out = {"bitnet": m.bitnet, "data": data if len(poolings) > 1 else data[poolings[0]]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
