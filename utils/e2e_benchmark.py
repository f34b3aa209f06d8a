#!/usr/bin/env python3
"""End-to-end benchmark (bitnet.cpp's utils/e2e_benchmark.py flags) over `bitnet bench`.

  python utils/e2e_benchmark.py -m model.gguf -n 128 -p 512 -t 4
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from bitnet.cli import run_script  # noqa: E402
from bitnet.config import BenchConfig  # noqa: E402
from bitnet.runtime import BitNetRuntime  # noqa: E402

PROG = "e2e_benchmark"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="e2e_benchmark.py", description="Run an end-to-end benchmark")
    p.add_argument("-m", "--model", default=None, help="GGUF model (default: the default model)")
    p.add_argument("-n", "--n-token", type=int, default=128, help="generated tokens (default 128)")
    p.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens (default 512)")
    p.add_argument("-t", "--threads", type=int, default=2, help="threads (default 2; 0: automatic)")
    p.add_argument("-d", "--n-depth", type=int, default=0,
                   help="tokens already in the cache before each test (default 0; llama-bench's --n-depth)")
    p.add_argument("-ctk", "--cache-type-k", default="f16",
                   help="KV cache types of the keys, comma-separated: f16 (default), q8_0")
    p.add_argument("-ctv", "--cache-type-v", default="f16",
                   help="KV cache types of the values, comma-separated: f16 (default), q8_0")
    p.add_argument("-r", "--repetitions", type=int, default=5, help="repetitions (default 5)")
    p.add_argument("-o", "--output", default="md", help="md, csv, json or jsonl (default md)")
    p.add_argument("--dry-run", action="store_true", help="print the command; run nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: JSON output")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    runtime = BitNetRuntime()

    def make_config() -> BenchConfig:
        return BenchConfig(model=args.model, n_token=args.n_token, n_prompt=args.n_prompt, threads=args.threads,
                           repetitions=args.repetitions, output=args.output, n_depth=args.n_depth,
                           cache_type_k=args.cache_type_k, cache_type_v=args.cache_type_v)

    return run_script(PROG, runtime, make_config, runtime.run_bench, args.dry_run, args.json)


if __name__ == "__main__":
    sys.exit(main())
