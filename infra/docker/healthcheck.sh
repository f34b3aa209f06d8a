#!/bin/bash
# HEALTHCHECK of the images: GET /health on the server's port must answer 200 (503 while the model
# loads). bash's /dev/tcp, so the image needs no HTTP client.
set -euo pipefail
port="${LLAMA_ARG_PORT:-8080}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 4 status <&3
[[ "$status" == "HTTP/1.1 200"* ]]
