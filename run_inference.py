#!/usr/bin/env python3
"""Run inference with a BitNet model (bitnet.cpp's run_inference.py flags). Standard library only.

  python run_inference.py -p "The capital of France is"      # default model, built on first use
  python run_inference.py -m model.gguf -p "Hi" -n 64 -t 4 -temp 0
  python run_inference.py -p "Hi" --dry-run                   # show what would run
  python run_inference.py --diagnostics                       # environment readiness (bitnet doctor)
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))

from bitnet.cli import run_script  # noqa: E402
from bitnet.config import RuntimeConfig  # noqa: E402
from bitnet.runtime import BitNetRuntime  # noqa: E402

PROG = "run_inference"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_inference.py", description="Run inference")
    p.add_argument("-m", "--model", default=None, help="GGUF model (default: the generated default model)")
    p.add_argument("-n", "--n-predict", type=int, default=128, help="tokens to predict (default 128)")
    p.add_argument("-p", "--prompt", default=None, help="prompt")
    p.add_argument("-t", "--threads", type=int, default=0, help="threads (default 0: automatic)")
    p.add_argument("-c", "--ctx-size", type=int, default=2048, help="context size (default 2048)")
    p.add_argument("-temp", "--temperature", type=float, default=0.8, help="temperature (default 0.8)")
    p.add_argument("-b", "--batch-size", type=int, default=512, help="prompt batch size (default 512)")
    p.add_argument("-ngl", "--gpu-layers", type=int, default=0, help="run the last N layers on the GPU (CUDA builds; gpu/README.md)")
    p.add_argument("-ctk", "--cache-type-k", default="f16", help="KV cache type of the keys: f16 (default) or q8_0 (CPU only)")
    p.add_argument("-ctv", "--cache-type-v", default="f16", help="KV cache type of the values: f16 (default) or q8_0 (CPU only)")
    p.add_argument("-s", "--seed", type=int, default=None, help="random seed")
    p.add_argument("--context-shift", action="store_true",
                   help="when the context is full, keep the --keep first tokens, drop half of the rest and go on")
    p.add_argument("--keep", type=int, default=0,
                   help="with --context-shift: tokens of the initial prompt that always stay (-1: all of it)")
    p.add_argument("-cnv", "--conversation", action="store_true", help="chat mode (-p is the system prompt)")
    p.add_argument("--telemetry-out", default=None, help="append JSONL telemetry events to this file")
    p.add_argument("--dry-run", action="store_true", help="print the configuration and command; run nothing")
    p.add_argument("--diagnostics", action="store_true", help="check the environment (bitnet doctor) and exit")
    p.add_argument("--json", action="store_true", help="with --dry-run / --diagnostics: JSON output")
    return p


def config_from(args) -> RuntimeConfig:
    # bitnet.cpp's -cnv takes -p as the system prompt and reads turns from stdin.
    return RuntimeConfig(model=args.model, prompt=None if args.conversation else args.prompt,
                         n_predict=args.n_predict, ctx_size=args.ctx_size, threads=args.threads,
                         temperature=args.temperature, batch_size=args.batch_size, gpu_layers=args.gpu_layers,
                         conversation=args.conversation, seed=args.seed,
                         system_prompt=args.prompt if args.conversation else None,
                         telemetry_out=args.telemetry_out, cache_type_k=args.cache_type_k,
                         cache_type_v=args.cache_type_v, context_shift=args.context_shift, keep=args.keep)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    runtime = BitNetRuntime()
    diagnose = (lambda: runtime.diagnostics(args.model, args.ctx_size, args.threads)) if args.diagnostics else None
    return run_script(PROG, runtime, lambda: config_from(args), runtime.run_inference, args.dry_run, args.json,
                      diagnose)


if __name__ == "__main__":
    sys.exit(main())
