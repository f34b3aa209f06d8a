#!/usr/bin/env python3
"""Generate a model with random ternary weights (bitnet.cpp's utils/generate-dummy-bitnet-model.py
flags) using `bitnet gen-model`.

  python utils/generate-dummy-bitnet-model.py models/bitnet_b1_58-large --outtype i2_s \
      --outfile models/dummy-bitnet-125m.i2_s.gguf --model-size 125M
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from bitnet.cli import ensure_built, fail, guarded  # noqa: E402
from bitnet.runtime import BitNetRuntime  # noqa: E402

PROG = "generate-dummy-bitnet-model"
TYPES = ["i2_s", "tq1_0", "tq2_0", "tl1", "tl2", "f32", "f16", "bf16", "q8_0", "q6_k"]
# bitnet.cpp's --model-size names → our presets.
SIZES = {"125M": "125M", "350M": "large", "700M": "large", "large": "large", "1B": "large",
         "2B": "2B-4T", "2B-4T": "2B-4T", "3B": "3B", "3.3B": "3B", "8B": "8B", "tiny": "tiny"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="generate-dummy-bitnet-model.py", description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=None,
                   help="reference model directory (bitnet.cpp reads its config; shapes here come from --model-size)")
    p.add_argument("--outfile", required=True, help="output GGUF file")
    p.add_argument("--outtype", choices=TYPES, default="i2_s", help="projection type (default i2_s)")
    p.add_argument("--model-size", default="125M", help=f"one of {', '.join(SIZES)} (default 125M)")
    p.add_argument("--arch", default="bitnet-b1.58", choices=["bitnet-b1.58", "bitnet", "llama"])
    p.add_argument("--seed", type=int, default=42)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.model_size not in SIZES:
        return fail(PROG, f"unknown --model-size {args.model_size!r} (known: {', '.join(SIZES)})", 2)
    runtime = BitNetRuntime()

    def body() -> int:
        ensure_built(runtime, PROG)
        argv_ = [runtime.binary, "gen-model", "--arch", args.arch, "--preset", SIZES[args.model_size],
                 "--type", args.outtype, "--seed", str(args.seed), "-o", args.outfile]
        return subprocess.run(argv_).returncode

    return guarded(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
