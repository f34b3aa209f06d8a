# The bitnet.cpp server, CPU build: docs/deployment.md "Container images".
#   podman build -f infra/docker/cpu.Dockerfile -t bitnet-cpp/bitnet:cpu .
#   podman run -p 8080:8080 bitnet-cpp/bitnet:cpu                      # the built-in default model
#   podman run -p 8080:8080 -v /srv/models:/models:ro -e LLAMA_ARG_MODEL=/models/m.gguf bitnet-cpp/bitnet:cpu
# BUILD_BASE / BASE default to debian:12-slim from a registry; infra/test-image.sh passes bases it
# builds from Debian packages (debootstrap) where no registry is reachable. A base that already
# holds the packages is used as it is (no network needed).
ARG BUILD_BASE=debian:12-slim
ARG BASE=debian:12-slim

FROM ${BUILD_BASE} AS build
RUN set -eu; pkgs="g++ cmake ninja-build pkg-config nlohmann-json3-dev libcpp-httplib-dev"; \
    if ! dpkg -s $pkgs >/dev/null 2>&1; then \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs; \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY src src
COPY tools tools
# Only the engine binary (no tests, no benchmarks), for any x86-64 CPU: the kernels pick their
# instruction set at run time.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITNET_BUILD_TESTS=OFF -DBITNET_BUILD_BENCH=OFF \
 && cmake --build /build --target bitnet_cli \
 && strip /build/bin/bitnet

FROM ${BASE}
RUN set -eu; pkgs="libcpp-httplib0.11"; \
    if ! dpkg -s $pkgs >/dev/null 2>&1; then \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent bitnet
COPY --from=build /build/bin/bitnet /usr/local/bin/bitnet
# The built-in default model: the trained 13M-parameter BitNet b1.58 that ships in models/
# (docs/default-model.md).
COPY models/bitnet-kjv-13M-i2_s.gguf /opt/bitnet/default-model.gguf
COPY infra/docker/healthcheck.sh /usr/local/bin/bitnet-healthcheck
# Every serve flag can come from LLAMA_ARG_<FLAG> (docs/server.md); these are the image's defaults.
ENV LLAMA_ARG_HOST=0.0.0.0 \
    LLAMA_ARG_PORT=8080 \
    LLAMA_ARG_MODEL=/opt/bitnet/default-model.gguf
USER 10001:10001
EXPOSE 8080
VOLUME ["/models"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/local/bin/bitnet-healthcheck"]
ENTRYPOINT ["/usr/local/bin/bitnet", "serve"]
