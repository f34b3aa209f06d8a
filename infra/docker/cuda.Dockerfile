# The bitnet.cpp server for NVIDIA GPUs: docs/deployment.md "Container images".
#   podman build -f infra/docker/cuda.Dockerfile -t bitnet-cpp/bitnet:cuda .
#   podman run --device nvidia.com/gpu=all -p 8080:8080 -e LLAMA_ARG_GPU_LAYERS=99 bitnet-cpp/bitnet:cuda
# Built on NVIDIA's CUDA 13 images (devel to build, runtime to run). The CUDA backend is issue 13:
# until it lands, -DBITNET_CUDA is not yet read by CMake and this image serves from the CPU
# (bitnet doctor reports "no GPU backend"); the layout, user, probes and flags are final.
ARG CUDA_DEVEL=nvidia/cuda:13.0.0-devel-ubuntu24.04
ARG CUDA_RUNTIME=nvidia/cuda:13.0.0-runtime-ubuntu24.04

FROM ${CUDA_DEVEL} AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config nlohmann-json3-dev libcpp-httplib-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY src src
COPY tools tools
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBITNET_BUILD_TESTS=OFF -DBITNET_BUILD_BENCH=OFF \
      -DBITNET_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="80;90" \
 && cmake --build /build --target bitnet_cli \
 && strip /build/bin/bitnet

FROM ${CUDA_RUNTIME}
# The cpp-httplib runtime library under whatever version name the distribution gives it.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(apt-cache pkgnames libcpp-httplib | grep -E '^libcpp-httplib[0-9.]+$') \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent bitnet
COPY --from=build /build/bin/bitnet /usr/local/bin/bitnet
# The built-in default model: the trained 13M-parameter BitNet b1.58 that ships in models/
# (docs/default-model.md).
COPY models/bitnet-kjv-13M-i2_s.gguf /opt/bitnet/default-model.gguf
COPY infra/docker/healthcheck.sh /usr/local/bin/bitnet-healthcheck
ENV LLAMA_ARG_HOST=0.0.0.0 \
    LLAMA_ARG_PORT=8080 \
    LLAMA_ARG_MODEL=/opt/bitnet/default-model.gguf \
    LLAMA_ARG_GPU_LAYERS=99
USER 10001:10001
EXPOSE 8080
VOLUME ["/models"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/local/bin/bitnet-healthcheck"]
ENTRYPOINT ["/usr/local/bin/bitnet", "serve"]
