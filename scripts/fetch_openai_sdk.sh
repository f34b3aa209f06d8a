#!/usr/bin/env bash
# Fetches OpenAI's official Node SDK (the `openai` npm package, pinned; it has no dependencies)
# into data/npm/node_modules/openai (ignored by git) for the client test of the server's OpenAI
# endpoints (python/tests/test_openai_sdk.py). npm checks the tarball against the registry's
# sha512. Already present: nothing to do. Usage: scripts/fetch_openai_sdk.sh [DEST]
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-data/npm}"
PACKAGE="openai@5.12.0"
out="$DEST/node_modules/openai"
# Only what Node runs is kept: the TypeScript sources (src/), type declarations and source maps are
# removed (not needed; their relative imports of the SDK's own shared types would read like
# references to paths outside the repository). A copy that still has src/ is fetched again.
[ -s "$out/package.json" ] && grep -q '"version": "5.12.0"' "$out/package.json" && [ ! -e "$out/src" ] && exit 0
command -v npm >/dev/null || { . scripts/lib/packages.sh; ensure_packages npm; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_openai_sdk: $PACKAGE -> $out" >&2
(cd "$tmp" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp"
rm -rf "$tmp/package/src"
find "$tmp/package" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.map' \) -delete
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp/package" "$out"
