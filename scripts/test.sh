#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds Release and the sanitizer build of
# the parser tests and an aarch64 cross build (run under qemu), then runs them all, and ends with
# 30 s of coverage-guided fuzzing per parser (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --asan
echo "== Release tests" >&2
ctest --test-dir build --output-on-failure -j "$(nproc)"
echo "== AddressSanitizer + UndefinedBehaviorSanitizer: parser tests" >&2
ctest --test-dir build-asan --output-on-failure -j "$(nproc)"
echo "== aarch64 build (NEON path) under qemu" >&2
scripts/test-arm.sh
echo "== Python front end (standard library only)" >&2
BITNET_BIN_DIR="$PWD/build/bin" python3 -m unittest discover -s python/tests
echo "== Server soak: 60 s of mixed concurrent traffic, OTLP collector down (bench/soak.py; build/soak.json)" >&2
python3 bench/soak.py --bin build/bin/bitnet --minutes 1 --clients 12 --dead-collector --json build/soak.json >/dev/null
echo "== Fuzzing: every parser target for 30 s (clang-14, ASan + UBSan; fuzz/README.md)" >&2
scripts/fuzz.sh all 30
