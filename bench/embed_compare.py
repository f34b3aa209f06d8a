#!/usr/bin/env python3
"""Embedding throughput, side by side: `llama-embedding`-compatible binaries (ours, ik_llama.cpp,
llama.cpp) embedding the same N inputs of about T tokens, in alternating rounds; one table with
the median embeddings/s and tokens/s over rounds and the ratio to the first engine. Standard
library only.

  bench/embed_compare.py --engine ours=build/bin/llama-embedding:e06-i2_s.gguf \\
                         --engine ik=/scratch/ik/build/bin/llama-embedding:teacher06-f16.gguf \\
                         [--inputs 64] [--words 24] [-t 2] [--rounds 5]

The time counted is the embedding work only, as each engine reports it: ours prints "embedded N
inputs (M tokens, …) in X ms"; llama.cpp-family tools print their prompt-eval time
("prompt eval time = X ms / M tokens"). Loading the model is not counted. The inputs are seeded
sentences from a fixed word list written to one file, one input per line (`-f`), so every engine
embeds the same text (token counts may differ by tokenizer; both are shown).
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which "
         "but have an they you were her she there been one all we their has would when if so no "
         "river mountain city language model vector search document answer question energy market "
         "history science music water light system network memory machine learning retrieval").split()

OURS = re.compile(r"embedded (\d+) inputs \((\d+) tokens[^)]*\) in ([0-9.]+) ms")
THEIRS = re.compile(r"prompt eval time\s*=\s*([0-9.]+) ms\s*/\s*(\d+) (?:tokens|runs)")


class CompareError(Exception):
    pass


def parse_engine(spec):
    name, sep, rest = spec.partition("=")
    binary, sep2, model = rest.rpartition(":")
    if not sep or not sep2 or not name or not binary or not model:
        raise CompareError(f"--engine '{spec}': expected NAME=LLAMA_EMBEDDING:MODEL")
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        raise CompareError(f"--engine {name}: '{binary}' is not an executable file")
    if not os.path.isfile(model):
        raise CompareError(f"--engine {name}: model '{model}' not found")
    return name, binary, model


def write_inputs(path, n, words, seed):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            f.write(" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + ".\n")


def run_once(binary, model, inputs_file, n_inputs, threads, ctx, pooling):
    args = [binary, "-m", model, "-f", inputs_file, "-t", str(threads), "-c", str(ctx), "-b", str(ctx),
            "-ub", str(ctx), "--pooling", pooling, "--embd-output-format", "json", "--embd-normalize", "2"]
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=1800)
    if proc.returncode != 0:
        raise CompareError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    log = proc.stderr + proc.stdout
    m = OURS.search(log)
    if m:
        if int(m.group(1)) != n_inputs:
            raise CompareError(f"{binary}: embedded {m.group(1)} inputs, expected {n_inputs}")
        return float(m.group(3)), int(m.group(2))
    m = THEIRS.search(log)
    if m:
        return float(m.group(1)), int(m.group(2))
    raise CompareError(f"{binary}: no timing line found in its output:\n{log[-2000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", action="append", required=True, help="NAME=LLAMA_EMBEDDING:MODEL (first = baseline)")
    ap.add_argument("--inputs", type=int, default=64)
    ap.add_argument("--words", type=int, default=24, help="words per input (~32 tokens with BOS/EOS)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=4096, help="-c/-b/-ub for every engine (all inputs in one batch)")
    ap.add_argument("--pooling", default="last", help="--pooling for every engine (ik_llama.cpp ignores gemma3's pooling_type key)")
    a = ap.parse_args()
    try:
        engines = [parse_engine(e) for e in a.engine]
        with tempfile.TemporaryDirectory() as tmp:
            inputs = os.path.join(tmp, "inputs.txt")
            write_inputs(inputs, a.inputs, a.words, a.seed)
            times = {name: [] for name, _, _ in engines}
            tokens = {}
            for r in range(a.rounds):
                for name, binary, model in engines:
                    ms, n_tok = run_once(binary, model, inputs, a.inputs, a.threads, a.ctx, a.pooling)
                    times[name].append(ms)
                    tokens[name] = n_tok
                    print(f"round {r + 1}: {name}: {ms:.1f} ms for {n_tok} tokens", file=sys.stderr)
    except (CompareError, subprocess.TimeoutExpired) as e:
        print(f"embed_compare: {e}", file=sys.stderr)
        return 1
    base = None
    print(f"| engine | model | inputs | tokens | ms (median of {a.rounds}) | embeddings/s | tokens/s | × first |")
    print("|---|---|---|---|---|---|---|---|")
    for name, _, model in engines:
        ms = statistics.median(times[name])
        eps = 1000.0 * a.inputs / ms
        base = base or eps
        print(f"| {name} | {os.path.basename(model)} | {a.inputs} | {tokens[name]} | {ms:.1f} | {eps:.1f} | "
              f"{1000.0 * tokens[name] / ms:.1f} | {eps / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
