#!/usr/bin/env python3
"""Convert a Hugging Face BitNet checkpoint directory to GGUF (bitnet.cpp's
utils/convert-helper-bitnet.py) with `bitnet convert`: writes MODEL_DIR/ggml-model-i2s-bitnet.gguf.

  python utils/convert-helper-bitnet.py models/bitnet-b1.58-2B-4T-bf16
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from bitnet.cli import ensure_built, fail, guarded  # noqa: E402
from bitnet.runtime import BitNetRuntime  # noqa: E402

PROG = "convert-helper-bitnet"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="convert-helper-bitnet.py", description="Convert a HF BitNet checkpoint to GGUF")
    p.add_argument("model_dir", help="directory with config.json and *.safetensors")
    p.add_argument("--outtype", default="i2_s", help="projection type (default i2_s)")
    p.add_argument("--outfile", default=None, help="default: MODEL_DIR/ggml-model-i2s-bitnet.gguf")
    args = p.parse_args(argv)
    if not os.path.isdir(args.model_dir):
        return fail(PROG, f"{args.model_dir} is not a directory", 2)
    if not os.path.isfile(os.path.join(args.model_dir, "config.json")):
        return fail(PROG, f"{args.model_dir} has no config.json: not a Hugging Face checkpoint", 2)
    out = args.outfile or os.path.join(args.model_dir, "ggml-model-i2s-bitnet.gguf")
    runtime = BitNetRuntime()

    def body() -> int:
        ensure_built(runtime, PROG)
        runtime.require_command("convert")
        return subprocess.run([runtime.binary, "convert", args.model_dir, "-o", out, "--outtype", args.outtype]).returncode

    return guarded(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
