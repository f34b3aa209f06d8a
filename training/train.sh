#!/usr/bin/env bash
# Retrains the shipped default model (docs/default-model.md): installs the Debian packages the
# trainer needs (PyTorch for Debian's /usr/bin/python3, OpenBLAS so its matrix products use both
# cores, the KJV text and its reader), builds `bitnet` for the export, then trains.
# Extra arguments go to training/train.py (e.g. --resume, --steps N, --out DIR, --gguf FILE).
# The defaults reproduce models/bitnet-kjv-13M-i2_s.gguf in 1–1.5 hours on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/packages.sh
ensure_packages python3-torch libopenblas0-pthread bible-kjv bible-kjv-text
scripts/setup.sh --cli
exec /usr/bin/python3 training/train.py "$@"
