#!/usr/bin/env bash
# Installs the Debian packages bitnet.cpp needs (only those missing) and builds build/ (Release).
# Usage: scripts/setup.sh [--asan]   (--asan also builds build-asan/ with the parser tests under
# AddressSanitizer + UndefinedBehaviorSanitizer)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake ninja-build ccache git pkg-config nlohmann-json3-dev libgtest-dev
          libbenchmark-dev python3 libcpp-httplib-dev)
# The test path (scripts/test.sh passes --asan) also needs headless Chromium for the server's
# web-page test (tests/server).
[ "${1:-}" = "--asan" ] && PACKAGES+=(chromium)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

JOBS=$(nproc)
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITNET_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"
if [ "${1:-}" = "--asan" ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBITNET_SANITIZE=ON \
        -DBITNET_PARSER_TESTS_ONLY=ON -DBITNET_WERROR=ON >/dev/null
  cmake --build build-asan -j "$JOBS"
fi
