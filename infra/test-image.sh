#!/usr/bin/env bash
# Builds the CPU image (infra/docker/cpu.Dockerfile) and proves it: the image's entrypoint serves
# the built-in default model, GET /health answers 200, one chat completion succeeds, the image's
# HEALTHCHECK passes, it runs as uid 10001, SIGTERM stops it with exit 0, and the image is under
# 150 MB besides the model.
#
# No image registry is reachable here, so both stages' bases are made from Debian packages
# (debootstrap --variant=minbase) and imported; with a registry, set USE_REGISTRY=1 to build
# FROM debian:12-slim. The image is built with buildah's chroot isolation (no OCI runtime needed);
# it is run with `podman run` where the machine can run containers, else — as in this sandbox,
# where crun cannot set rlimits or use the hybrid cgroup layout — with `buildah run
# --isolation=chroot` of the image's own entrypoint, environment and user.
#   infra/test-image.sh            (about 5 minutes the first time; the bases are cached as images)
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
ensure_packages podman buildah debootstrap python3

MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
IMAGE="bitnet-cpp/bitnet:cpu"
MODEL=models/bitnet-kjv-13M-i2_s.gguf
PORT="${PORT:-18080}"

say() { echo "test-image: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

# The default model the image carries ships with the repository (docs/default-model.md).
[ -f "$MODEL" ] || fail "$MODEL is missing (git checkout -- models/)"

# make_base NAME PACKAGES: a minbase Debian 12 root file system with PACKAGES, imported as NAME.
make_base() {
  local name="$1" include="$2" dir
  if podman image exists "$name"; then say "base $name: cached"; return; fi
  dir=$(mktemp -d /var/tmp/bitnet-base.XXXXXX)
  say "base $name: debootstrap (minbase + $include)"
  debootstrap --variant=minbase --include="$include" bookworm "$dir" "$MIRROR" >/dev/null
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | podman import --change 'CMD ["/bin/bash"]' - "$name" >/dev/null
  rm -rf "$dir"
}

build_args=()
if [ "${USE_REGISTRY:-0}" != 1 ]; then
  make_base localhost/bitnet-build-base:bookworm "g++,cmake,ninja-build,pkg-config,nlohmann-json3-dev,libcpp-httplib-dev"
  make_base localhost/bitnet-runtime-base:bookworm "libcpp-httplib0.11"
  build_args=(--build-arg BUILD_BASE=localhost/bitnet-build-base:bookworm
              --build-arg BASE=localhost/bitnet-runtime-base:bookworm)
fi

say "building $IMAGE"
buildah bud --isolation=chroot --layers "${build_args[@]}" -f infra/docker/cpu.Dockerfile -t "$IMAGE" . >/dev/null

# Size without the model.
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
model_bytes=$(stat -c %s "$MODEL")
rest=$(( (size - model_bytes) / 1048576 ))
say "image $(( size / 1048576 )) MiB = model $(( model_bytes / 1048576 )) MiB + ${rest} MiB"
[ "$rest" -lt 150 ] || fail "image without the model is ${rest} MiB (limit 150)"

entrypoint=$(podman image inspect --format '{{join .Config.Entrypoint " "}}' "$IMAGE")
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[ "$entrypoint" = "/usr/local/bin/bitnet serve" ] || fail "entrypoint is '$entrypoint'"
[ "$user" = "10001:10001" ] || fail "user is '$user'"

cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  podman rm -f bitnet-image-test >/dev/null 2>&1 || true
  [ -n "${ctr:-}" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mode=""
if podman run -d --name bitnet-image-test -p "127.0.0.1:${PORT}:8080" "$IMAGE" >/dev/null 2>/tmp/bitnet-podman-run.err; then
  mode=podman
  in_image() { podman exec bitnet-image-test "$@"; }
else
  say "podman run cannot start a container here: $(tail -n 1 /tmp/bitnet-podman-run.err)"
  say "running the image's entrypoint with buildah run --isolation=chroot instead"
  mode=buildah
  ctr=$(buildah from "$IMAGE")
  # The image's environment (LLAMA_ARG_*) and user apply; the port is moved off 8080 only so that
  # a server already on this machine does not collide.
  buildah run --isolation=chroot --env LLAMA_ARG_PORT="$PORT" "$ctr" -- /usr/local/bin/bitnet serve \
      >/tmp/bitnet-image-server.log 2>&1 &
  server_pid=$!
  in_image() { buildah run --isolation=chroot --env LLAMA_ARG_PORT="$PORT" "$ctr" -- "$@"; }
fi

python3 - "$PORT" <<'EOF' || fail "the server in the image did not answer (log: /tmp/bitnet-image-server.log)"
import json, sys, time, urllib.request
base = "http://127.0.0.1:%s" % sys.argv[1]
deadline = time.time() + 120
while True:
    try:
        with urllib.request.urlopen(base + "/health", timeout=5) as r:
            if r.status == 200:
                break
    except Exception:
        pass
    if time.time() > deadline:
        sys.exit("no /health 200 within 120 s")
    time.sleep(0.5)
req = urllib.request.Request(base + "/v1/chat/completions", method="POST",
                             data=json.dumps({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}).encode(),
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    body = json.load(r)
assert body["object"] == "chat.completion", body
assert body["usage"]["completion_tokens"] > 0, body
print("test-image: /health 200; chat completion: %d tokens: %r" % (body["usage"]["completion_tokens"],
      body["choices"][0]["message"]["content"]), file=sys.stderr)
EOF

in_image /usr/local/bin/bitnet-healthcheck || fail "the image's HEALTHCHECK command failed"
if [ "$mode" = podman ]; then
  uid=$(in_image id -u)
else  # the uid of the server process itself
  uid=$(ps -o uid= -p "$(pgrep -f '^/usr/local/bin/bitnet serve' | head -n 1)" | tr -d ' ')
fi
[ "$uid" = 10001 ] || fail "the server runs as uid $uid"
say "HEALTHCHECK passes; runs as uid $uid ($mode)"

# SIGTERM: the server shuts down cleanly (exit 0).
if [ "$mode" = podman ]; then
  podman stop -t 30 bitnet-image-test >/dev/null
  rc=$(podman inspect --format '{{.State.ExitCode}}' bitnet-image-test)
else
  pkill -TERM -f "^/usr/local/bin/bitnet serve" || true
  rc=0; wait "$server_pid" || rc=$?
  server_pid=""
fi
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
say "ok: $IMAGE builds, serves, passes its health check and stops cleanly ($mode)"
