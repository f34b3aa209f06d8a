#!/usr/bin/env bash
# First command on a fresh machine: installs what is missing, builds, generates the default model
# (random ternary weights in BitNet-b1.58 shapes, with the real Llama-3 tokenizer) and generates
# text with it. Extra arguments go to `bitnet run` (e.g. -p "..." -n 64 -t 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ $# -eq 0 ]; then
  set -- -p "The capital of France is" -n 32 --temp 0
fi
exec build/bin/bitnet run "$@"
