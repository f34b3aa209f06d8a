#!/usr/bin/env bash
# Cross-compiles the tensor, GGUF and kernel tests and the default-model oracle (held-out perplexity
# and greedy text through the NEON kernels vs the reference path) for 64-bit ARM with Debian's
# g++-aarch64-linux-gnu and runs them under qemu-aarch64. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
ensure_packages g++-aarch64-linux-gnu qemu-user googletest

cmake -S . -B build-arm64 -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
      -DBITNET_ONLY_MODULES="base;tensor;formats;kernels;ops;memory;model;tokenizer;sampling;grammar;runtime" \
      -DBITNET_ONLY_TESTS="tensor;formats;kernels;ops;default_model" -DBITNET_WERROR=ON >/dev/null
cmake --build build-arm64 -j "$(nproc)"
echo "== aarch64 (qemu) tests: tensor types, GGUF, kernels, default model" >&2
ctest --test-dir build-arm64 --output-on-failure -j "$(nproc)"
