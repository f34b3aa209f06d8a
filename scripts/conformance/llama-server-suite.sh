#!/usr/bin/env bash
# Run llama.cpp's server test suite (pytest) against bitnet.cpp's build/bin/llama-server.
#
#   scripts/conformance/llama-server-suite.sh [options] SUITE_DIR [pytest args...]
#
# SUITE_DIR is a llama.cpp checkout's tools/server/tests (the suite is not part of this
# repository). Without pytest args the issue's target files run: unit/test_basic.py
# unit/test_tokenize.py unit/test_completion.py unit/test_chat_completion.py
# unit/test_security.py unit/test_ctx_shift.py unit/test_template.py.
#
# Options (before SUITE_DIR):
#   --model FILE          local GGUF for the generation presets
#                         (default: models/bitnet-kjv-13M-i2_s.gguf)
#   --bin FILE            server binary (default: $LLAMA_SERVER_BIN_PATH or build/bin/llama-server)
#   --report FILE.jsonl   per-test JSON lines; FILE.md gets the summary tables (summarize.py)
#   --drop-unknown-flags  diagnostic: remove the flags the binary refuses, so endpoint tests run
#                         anyway; NOT a conformance result (the report says so)
#
# Environment: PORT (default: a free port), SLOW_TESTS=1 (the suite's slow tests).
# Needs Debian's python3-pytest python3-requests python3-aiohttp python3-numpy
# python3-prometheus-client python3-wget (apt-get install ...); openai and huggingface_hub are
# not needed: tests that use the OpenAI client are skipped. See docs/conformance.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
MODEL="$ROOT/models/bitnet-kjv-13M-i2_s.gguf"
BIN="${LLAMA_SERVER_BIN_PATH:-$ROOT/build/bin/llama-server}"
REPORT=""
DROP=0

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --report) REPORT="$2"; shift 2 ;;
    --drop-unknown-flags) DROP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "llama-server-suite: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { usage >&2; exit 2; }
SUITE="$(cd "$1" && pwd)"; shift

[[ -f "$SUITE/utils.py" && -d "$SUITE/unit" ]] || {
  echo "llama-server-suite: $SUITE is not llama.cpp's tools/server/tests (no utils.py / unit/)" >&2; exit 2; }
abspath() { "$PY" -c 'import os,sys; print(os.path.abspath(sys.argv[1]))' "$1"; }
MODEL="$(abspath "$MODEL")"; BIN="$(abspath "$BIN")"
[[ -f "$MODEL" ]] || { echo "llama-server-suite: model not found: $MODEL" >&2; exit 2; }
[[ -x "$BIN" ]] || { echo "llama-server-suite: server binary not found: $BIN (build it first)" >&2; exit 2; }

missing=()
for mod in pytest requests aiohttp numpy prometheus_client wget; do
  "$PY" -c "import $mod" 2>/dev/null || missing+=("$mod")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "llama-server-suite: missing Python modules: ${missing[*]}" >&2
  echo "  apt-get install python3-pytest python3-requests python3-aiohttp python3-numpy python3-prometheus-client python3-wget" >&2
  exit 2
fi

if [[ $# -eq 0 ]]; then
  set -- unit/test_basic.py unit/test_tokenize.py unit/test_completion.py \
    unit/test_chat_completion.py unit/test_security.py unit/test_ctx_shift.py unit/test_template.py
  # like the suite's tests.sh: slow tests only with SLOW_TESTS=1
  [[ "${SLOW_TESTS:-0}" == 1 ]] || set -- -m "not slow" "$@"
fi

if [[ -z "${PORT:-}" ]]; then
  PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
fi
export PORT
export LLAMA_SERVER_BIN_PATH="$BIN"
export PYTHONPATH="$HERE:$SUITE${PYTHONPATH:+:$PYTHONPATH}"
unset DEBUG_EXTERNAL N_GPU_LAYERS

args=(-p bitnet_plugin -p no:cacheprovider --bitnet-model "$MODEL" -rfEs)
[[ -n "$REPORT" ]] && { REPORT="$(abspath "$REPORT")"; args+=(--bitnet-report "$REPORT"); }
[[ $DROP -eq 1 ]] && args+=(--bitnet-drop-unknown-flags)

echo "llama-server-suite: suite $SUITE"
echo "llama-server-suite: binary $BIN, model $MODEL, port $PORT$([[ $DROP -eq 1 ]] && echo ', DIAGNOSTIC: refused flags dropped')"
rc=0
(cd "$SUITE" && "$PY" -m pytest "${args[@]}" "$@") || rc=$?

if [[ -n "$REPORT" && -f "$REPORT" ]]; then
  "$PY" "$HERE/summarize.py" "$REPORT" > "${REPORT%.jsonl}.md" && echo "llama-server-suite: summary ${REPORT%.jsonl}.md"
fi
exit $rc
