#!/usr/bin/env bash
# The CUDA backend's check on a machine with an NVIDIA GPU (issue 13, gpu/README.md):
#   1. configures build-cuda/ (-DBITNET_CUDA=ON, ccache when installed, SASS for this machine's GPU
#      only) and builds only bitnet_cli and test_cuda;
#   2. runs the GPU tests: every kernel against the CPU reference and whole-model -ngl parity on
#      `tiny` models of every architecture and ternary type (a skipped GPU test is a failure here);
#   3. prints a benchmark table: `bitnet bench -ngl 99` (pp512, tg128) on generated `large` (bitnet,
#      I2_S) and `2B-4T` (bitnet-b1.58, I2_S) models, then 1 and 8 concurrent server streams of 128
#      tokens on 2B-4T through `bitnet serve -ngl 99 -np 8` and bench/server_load.py.
# Meant to finish in under 8 minutes on a 16-core machine. Exits non-zero with a one-line reason
# when there is no GPU, no nvcc, no tokenizer data, or any step fails.
#
# Environment: BUILD (default build-cuda), CUDA_ARCH (default native: this GPU), NVCC (default
# /usr/local/cuda/bin/nvcc or nvcc on PATH), BITNET_DATA_DIR (tokenizer data for the generated
# models; default ./data, see data/README.md), MODELS (where the generated models go, default
# $BUILD/gpu-check-models), SKIP_SERVER=1 (no server streams), REPS (bench repetitions, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "gpu-check: FAILED: $*" >&2
  exit 1
}
step() { echo "== gpu-check: $* ($(date -u +%H:%M:%S))" >&2; }

BUILD=${BUILD:-build-cuda}
CUDA_ARCH=${CUDA_ARCH:-native}
REPS=${REPS:-3}
MODELS=${MODELS:-$BUILD/gpu-check-models}
JOBS=$(nproc)
START=$(date +%s)

# ---- is there a GPU? ----------------------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 || fail "nvidia-smi not found: no NVIDIA driver on this machine (this check needs an NVIDIA GPU)"
GPUS=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1) ||
  fail "nvidia-smi cannot reach a GPU: $GPUS"
[ -n "$GPUS" ] || fail "nvidia-smi lists no GPU"
step "GPU: $GPUS"
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$NVCC" ] || NVCC=$(command -v nvcc 2>/dev/null) || fail "no nvcc (install the CUDA toolkit or set NVCC=/path/to/nvcc)"

BITNET_DATA_DIR=${BITNET_DATA_DIR:-data}
[ -f "$BITNET_DATA_DIR/llama3-tokenizer.tiktoken" ] && [ -f "$BITNET_DATA_DIR/ggml-vocab-llama-spm.gguf" ] ||
  fail "tokenizer data (llama3-tokenizer.tiktoken, ggml-vocab-llama-spm.gguf) not found in $BITNET_DATA_DIR: set BITNET_DATA_DIR"
BITNET_DATA_DIR=$(cd "$BITNET_DATA_DIR" && pwd)
export BITNET_DATA_DIR BITNET_SHARED_DATA=${BITNET_SHARED_DATA:-$BITNET_DATA_DIR}

# ---- build ------------------------------------------------------------------------------------
step "configure $BUILD (nvcc $("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), CUDA architectures $CUDA_ARCH)"
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
command -v ccache >/dev/null 2>&1 || echo "gpu-check: note: ccache not installed; building without it" >&2
cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBITNET_WERROR=ON -DBITNET_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" -DBITNET_ONLY_TESTS=cuda >/dev/null ||
  fail "cmake configure failed (rerun without >/dev/null to see why)"
step "build bitnet_cli test_cuda with $JOBS jobs"
cmake --build "$BUILD" -j "$JOBS" --target bitnet_cli test_cuda || fail "build failed"
BIN=$BUILD/bin/bitnet

# ---- GPU tests --------------------------------------------------------------------------------
step "GPU tests (test_cuda)"
# GpuOffloadRefusal checks the no-GPU error and skips where a GPU is present; everything else must run.
log=$(mktemp)
"$BUILD/bin/test_cuda" --gtest_filter='-GpuOffloadRefusal.*' 2>&1 | tee "$log" | grep -E '^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|FAILED  \]' >&2 ||
  true
grep -q '^\[  PASSED  \]' "$log" && ! grep -q 'FAILED' "$log" || {
  grep -B3 -A20 'Failure' "$log" | head -80 >&2
  fail "GPU tests failed (full log: $log)"
}
if grep -q '^\[  SKIPPED \]' "$log"; then
  grep -m3 -A1 'SKIPPED\|Skipped' "$log" >&2
  fail "GPU tests were skipped although nvidia-smi sees a GPU (the CUDA runtime's reason is above)"
fi

# ---- benchmark --------------------------------------------------------------------------------
mkdir -p "$MODELS"
gen() {  # arch preset file
  [ -s "$MODELS/$3" ] && return 0
  step "generate $1 $2 (I2_S)"
  "$BIN" gen-model --arch "$1" --preset "$2" --type i2_s -o "$MODELS/$3.tmp" >/dev/null || fail "gen-model $1 $2 failed"
  mv "$MODELS/$3.tmp" "$MODELS/$3"
}
gen bitnet large large-i2_s.gguf
gen bitnet-b1.58 2B-4T 2b4t-i2_s.gguf
"$BIN" doctor -m "$MODELS/2b4t-i2_s.gguf" -ngl 99 2>&1 | grep -A1 ' gpu ' >&2 || true

step "bench -ngl 99 (pp512, tg128, $REPS repetitions)"
"$BIN" bench -m "$MODELS/large-i2_s.gguf,$MODELS/2b4t-i2_s.gguf" -ngl 99 -p 512 -n 128 -r "$REPS" ||
  fail "bitnet bench -ngl 99 failed"

if [ "${SKIP_SERVER:-0}" != 1 ]; then
  step "server: 1 and 8 concurrent streams of 128 tokens, 2B-4T, -ngl 99 -np 8"
  srv_log=$(mktemp)
  "$BIN" serve -m "$MODELS/2b4t-i2_s.gguf" -ngl 99 -np 8 -c 4096 --port 0 2>"$srv_log" &
  srv=$!
  trap 'kill $srv 2>/dev/null || true' EXIT
  url=
  for _ in $(seq 1 240); do
    url=$(sed -n 's/.*server listening on \(http:\/\/[0-9.]*:[0-9]*\).*/\1/p' "$srv_log" | head -1)
    grep -q "server ready" "$srv_log" && [ -n "$url" ] && break
    kill -0 $srv 2>/dev/null || { cat "$srv_log" >&2; fail "bitnet serve -ngl 99 exited"; }
    sleep 0.5
  done
  [ -n "$url" ] && grep -q "server ready" "$srv_log" || { tail -20 "$srv_log" >&2; fail "the server did not become ready"; }
  timeout 300 python3 bench/server_load.py --url "$url" --levels 1,8 --tokens 128 || fail "server streams failed"
  kill $srv 2>/dev/null || true
  wait $srv 2>/dev/null || true
  trap - EXIT
fi

step "passed in $(( $(date +%s) - START )) s"
