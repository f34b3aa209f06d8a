#!/usr/bin/env python3
"""Trains the project's default model: a small BitNet b1.58 on the King James Bible.

Run through training/train.sh (installs python3-torch, OpenBLAS and the corpus, then calls this
with Debian's /usr/bin/python3). Deterministic for a given seed and thread count; resumable
(`--resume` continues from OUT/checkpoint.pt with the same data order); the result is exported
as a Hugging Face checkpoint (OUT/hf) and converted to GGUF by the project's own `bitnet convert`.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus  # noqa: E402
from safetensors_writer import write_f32_safetensors  # noqa: E402
from model import BitNet  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def model_config(args, vocab):
    return {
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
        "hidden_size": args.dim, "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads, "intermediate_size": args.ffn, "vocab_size": len(vocab),
        "max_position_embeddings": args.ctx, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": True, "bos_token_id": vocab.index(bpe.BOS), "eos_token_id": vocab.index(bpe.EOS),
        "torch_dtype": "float32", "_name_or_path": args.name,
    }


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def batch(stream, gen, args):
    """B windows at seeded random offsets; position 0 is BOS (as every perplexity chunk starts)."""
    starts = torch.randint(0, len(stream) - args.ctx, (args.batch,), generator=gen)
    rows = torch.stack([stream[s:s + args.ctx] for s in starts.tolist()])
    inputs = rows.clone()
    inputs[:, 1:] = rows[:, :-1]
    inputs[:, 0] = BOS_ID
    return inputs, rows


@torch.no_grad()
def perplexity(model, ids, ctx, max_chunks=None):
    """Scored exactly like `bitnet perplexity` / llama-perplexity: chunks of ctx tokens of the
    BOS-prefixed text, chunk[0] = BOS, positions ctx/2 … ctx−2 predict the next token."""
    model.eval()
    n = len(ids) // ctx if max_chunks is None else min(len(ids) // ctx, max_chunks)
    nll, count = 0.0, 0
    for c in range(n):
        chunk = ids[c * ctx:(c + 1) * ctx].clone()
        chunk[0] = BOS_ID
        logits = model(chunk[None]).double()[0]
        first = ctx // 2
        lp = logits[first:ctx - 1].log_softmax(-1)
        nll -= lp.gather(1, chunk[first + 1:ctx, None]).sum().item()
        count += ctx - 1 - first
    model.train()
    return math.exp(nll / count), count


def progress_line(step, total, loss, tok_s, started, extra=""):
    width = 30
    done = int(width * step / total)
    eta = (time.time() - started) / max(step - START_STEP, 1) * (total - step)
    return (f"\r[{'#' * done}{'.' * (width - done)}] {step}/{total} loss {loss:.3f} "
            f"{tok_s:,.0f} tok/s ETA {int(eta // 60)}:{int(eta % 60):02d}{extra}   ")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "build", "train"), help="work directory (checkpoints, hf/)")
    ap.add_argument("--gguf", default=os.path.join(REPO, "models", "bitnet-kjv-13M-i2_s.gguf"),
                    help="where the converted I2_S model goes")
    ap.add_argument("--bitnet", default=os.path.join(REPO, "build", "bin", "bitnet"), help="bitnet binary for convert")
    ap.add_argument("--name", default="bitnet-kjv-13M")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1100)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--save-every", type=int, default=50)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="stop (with a checkpoint) after N steps of this run; --resume continues")
    ap.add_argument("--embedding-type", default="q6_k",
                    help="token embedding / LM head type of the GGUF (q6_k: as the shipped file; f16, q8_0)")
    ap.add_argument("--no-convert", action="store_true", help="stop after writing OUT/hf")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    hf = os.path.join(args.out, "hf")
    os.makedirs(hf, exist_ok=True)

    t0 = time.time()
    train_text, held_text = corpus.split(corpus.read_chapters())
    with open(os.path.join(args.out, "heldout.txt"), "w") as f:
        f.write(held_text)
    print(f"corpus: {len(train_text):,} training characters, {len(held_text):,} held out", file=sys.stderr)
    vocab, merges = bpe.train(train_text, args.vocab,
                              progress=lambda i, n: print(f"\rBPE merges {i}/{n}", end="", file=sys.stderr))
    bpe.write_tokenizer_files(hf, vocab, merges)
    enc = bpe.Encoder(vocab, merges)
    global BOS_ID
    BOS_ID = enc.bos
    train_ids = torch.tensor(enc.encode(train_text, bos=False), dtype=torch.long)
    held_ids = torch.tensor(enc.encode(held_text, bos=True), dtype=torch.long)
    print(f"\ntokenizer: {len(vocab)} tokens; {len(train_ids):,} training tokens, {len(held_ids):,} held out "
          f"({time.time() - t0:.1f} s)", file=sys.stderr)

    cfg = model_config(args, vocab)
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    model = BitNet(cfg)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    step = 0
    ckpt = os.path.join(args.out, "checkpoint.pt")
    if args.resume and os.path.exists(ckpt):
        state = torch.load(ckpt)
        if state["config"] != cfg or state["args"]["seed"] != args.seed or state["args"]["steps"] != args.steps:
            raise SystemExit(f"{ckpt} was written with different settings; remove it or match them")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["rng"])
        step = state["step"]
        print(f"resumed at step {step}", file=sys.stderr)
    global START_STEP
    START_STEP = step
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters ({args.layers} layers, d {args.dim}, ffn {args.ffn}); "
          f"{args.steps} steps × {args.batch} × {args.ctx} tokens, {args.threads} threads", file=sys.stderr)

    started, ema, tokens, extra = time.time(), None, 0, ""
    stop_at = args.steps if args.stop_after is None else min(args.steps, step + args.stop_after)
    while step < stop_at:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        x, y = batch(train_ids, gen, args)
        loss = F.cross_entropy(model(x).reshape(-1, cfg["vocab_size"]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += x.numel()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % args.eval_every == 0 or step == args.steps:
            ppl, _ = perplexity(model, held_ids, args.ctx, max_chunks=8)
            extra = f" | held-out ppl {ppl:.1f}"
        print(progress_line(step, args.steps, ema, tokens / (time.time() - started), started, extra),
              end="", file=sys.stderr, flush=True)
        if step % args.save_every == 0 or step == stop_at:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                        "rng": torch.get_rng_state(), "step": step, "config": cfg, "args": vars(args)},
                       ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
    print(f"\ntrained {step - START_STEP} steps in {(time.time() - started) / 60:.1f} min", file=sys.stderr)
    if step < args.steps:
        print(f"stopped at step {step} of {args.steps}: continue with --resume", file=sys.stderr)
        return

    ppl, count = perplexity(model, held_ids, args.ctx)
    print(f"held-out perplexity (f32 master, QAT forward, ctx {args.ctx}): {ppl:.4f} over {count} tokens",
          file=sys.stderr)
    write_f32_safetensors(os.path.join(hf, "model.safetensors"),
                          {k: (t.shape, t.numpy().tobytes()) for k, t in model.hf_state().items()})
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump({"heldout_ppl_f32": ppl, "scored_tokens": count, "ctx": args.ctx, "steps": args.steps,
                   "train_tokens": len(train_ids), "heldout_tokens": len(held_ids), "params": n_params,
                   "threads": args.threads, "seed": args.seed}, f, indent=1)
    if args.no_convert:
        return
    if not os.access(args.bitnet, os.X_OK):
        raise SystemExit(f"{args.bitnet} not found: build the project first (scripts/setup.sh), "
                         f"or convert {hf} yourself with `bitnet convert`")
    subprocess.run([args.bitnet, "convert", hf, "-o", args.gguf, "--outtype", "i2_s",
                    "--embedding-type", args.embedding_type], check=True)
    print(f"wrote {args.gguf} ({os.path.getsize(args.gguf) / 2**20:.1f} MiB)", file=sys.stderr)


BOS_ID = 0
START_STEP = 0

if __name__ == "__main__":
    main()
