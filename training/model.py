"""BitNet b1.58 in PyTorch, as the engine's `bitnet-b1.58` architecture computes it
(architectures.md §2): pre-norm LLaMA blocks with SubLN (a RMSNorm before o_proj and before
down_proj), ReLU² gated FFN, NEOX RoPE, tied embedding/LM head, no biases.

Quantization-aware training as in the BitNet b1.58 paper: every projection sees absmean-ternary
weights (one α per tensor) and per-token absmax int8 activations in the forward pass; gradients
pass straight through both roundings (STE) to the f32 master weights.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def ternarize(w):
    """ternary-formats.md §1: α = max(mean|W|, 1e-5); W_q = α · clamp(round(W/α), −1, 1)."""
    alpha = w.abs().mean().clamp(min=1e-5)
    return (w / alpha).round().clamp(-1, 1) * alpha


def quantize_activations(x):
    """ternary-formats.md §3: per token s = 127 / max(max|x|, 1e-5), q = clamp(round(x·s), −128, 127)."""
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


class BitLinear(nn.Linear):
    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out, bias=False)

    def forward(self, x):
        w = self.weight
        w = w + (ternarize(w) - w).detach()
        x = x + (quantize_activations(x) - x).detach()
        return F.linear(x, w)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def rope_tables(n_ctx, head_dim, theta):
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.arange(n_ctx, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope_neox(x, cos, sin):
    """x: [B, heads, T, hd]; pairs (x_j, x_{j+hd/2}) (architectures.md §1, NEOX)."""
    h = x.shape[-1] // 2
    a, b = x[..., :h], x[..., h:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c["hidden_size"], c["hidden_size"] // c["num_attention_heads"]
        self.n_head, self.n_kv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], hd
        eps = c["rms_norm_eps"]
        self.attn_norm = RMSNorm(d, eps)
        self.q = BitLinear(d, self.n_head * hd)
        self.k = BitLinear(d, self.n_kv * hd)
        self.v = BitLinear(d, self.n_kv * hd)
        self.attn_sub_norm = RMSNorm(self.n_head * hd, eps)
        self.o = BitLinear(self.n_head * hd, d)
        self.ffn_norm = RMSNorm(d, eps)
        self.gate = BitLinear(d, c["intermediate_size"])
        self.up = BitLinear(d, c["intermediate_size"])
        self.ffn_sub_norm = RMSNorm(c["intermediate_size"], eps)
        self.down = BitLinear(c["intermediate_size"], d)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(B, T, self.n_head, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        q, k = apply_rope_neox(q, cos, sin), apply_rope_neox(k, cos, sin)
        if self.n_kv != self.n_head:
            g = self.n_head // self.n_kv
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.hd)) + mask
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, self.n_head * self.hd)
        x = x + self.o(self.attn_sub_norm(o))
        h = self.ffn_norm(x)
        z = F.relu(self.gate(h)).square() * self.up(h)
        return x + self.down(self.ffn_sub_norm(z))


class BitNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        cos, sin = rope_tables(c["max_position_embeddings"], c["hidden_size"] // c["num_attention_heads"],
                               c["rope_theta"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, ids):
        T = ids.shape[1]
        mask = torch.full((T, T), float("-inf")).triu(1)
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        return F.linear(self.norm(x), self.embed.weight)  # tied head

    # HF BitNetForCausalLM names (what `bitnet convert` maps, hf_convert.cpp).
    def hf_state(self):
        out = {"model.embed_tokens.weight": self.embed.weight, "model.norm.weight": self.norm.weight}
        for i, b in enumerate(self.blocks):
            p = f"model.layers.{i}."
            out.update({
                p + "input_layernorm.weight": b.attn_norm.weight,
                p + "self_attn.q_proj.weight": b.q.weight,
                p + "self_attn.k_proj.weight": b.k.weight,
                p + "self_attn.v_proj.weight": b.v.weight,
                p + "self_attn.attn_sub_norm.weight": b.attn_sub_norm.weight,
                p + "self_attn.o_proj.weight": b.o.weight,
                p + "post_attention_layernorm.weight": b.ffn_norm.weight,
                p + "mlp.gate_proj.weight": b.gate.weight,
                p + "mlp.up_proj.weight": b.up.weight,
                p + "mlp.ffn_sub_norm.weight": b.ffn_sub_norm.weight,
                p + "mlp.down_proj.weight": b.down.weight,
            })
        return {k: v.detach().float().contiguous() for k, v in out.items()}
