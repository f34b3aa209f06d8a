#!/usr/bin/env bash
# First command on a fresh machine: installs what is missing, builds only the `bitnet` binary and
# writes text with the shipped default model (a 13M-parameter BitNet b1.58 trained on the King
# James Bible; docs/default-model.md). Extra arguments go to `bitnet run` (e.g. -p "..." -n 64).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --cli
if [ $# -eq 0 ]; then
  set -- -p "And it came to pass" -n 64 --temp 0.8 -s 2
fi
exec build/bin/bitnet run "$@"
