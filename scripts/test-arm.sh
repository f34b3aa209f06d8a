#!/usr/bin/env bash
# Cross-compiles the tensor, GGUF and kernel tests for 64-bit ARM (NEON) with Debian's
# g++-aarch64-linux-gnu and runs them under qemu-aarch64. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++-aarch64-linux-gnu qemu-user googletest)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-arm: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B build-arm64 -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
      -DBITNET_ONLY_MODULES="tensor;formats;kernels;ops" -DBITNET_WERROR=ON >/dev/null
cmake --build build-arm64 -j "$(nproc)"
echo "== aarch64 (qemu) tests: tensor types, GGUF, kernels" >&2
ctest --test-dir build-arm64 --output-on-failure -j "$(nproc)"
