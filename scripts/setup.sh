#!/usr/bin/env bash
# Installs the Debian packages bitnet.cpp needs (only those missing) and builds build/ (Release).
# Usage: scripts/setup.sh [--asan]   (--asan also builds build-asan/: the modules that parse
# untrusted input — tensor types, GGUF, tokenizers — and their tests under ASan + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake ninja-build ccache git pkg-config nlohmann-json3-dev libgtest-dev
          libbenchmark-dev python3 libcpp-httplib-dev)
# The test path (scripts/test.sh passes --asan) also needs headless Chromium for the server's
# web-page test (tests/server).
[ "${1:-}" = "--asan" ] && PACKAGES+=(chromium)
# ... and the deployment tests (python/tests/test_k8s.py): kubectl (any build with `kustomize`;
# Debian's kubernetes-client where none is installed) and python3-yaml to read its output.
if [ "${1:-}" = "--asan" ]; then
  PACKAGES+=(python3-yaml tmux prometheus)  # prometheus: promtool checks /metrics; tmux: `bitnet top`
  command -v kubectl >/dev/null || PACKAGES+=(kubernetes-client)
fi
. scripts/lib/packages.sh
ensure_packages "${PACKAGES[@]}"

JOBS=$(nproc)
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITNET_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"
if [ "${1:-}" = "--asan" ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBITNET_SANITIZE=ON \
        -DBITNET_ONLY_MODULES="tensor;formats;tokenizer" -DBITNET_WERROR=ON >/dev/null
  cmake --build build-asan -j "$JOBS"
fi
