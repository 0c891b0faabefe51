# CUDA build of diffuse against the official LibTorch (cxx11 ABI). Not built in our CI (no
# Docker engine or GPU there); kept correct by hand, see README "CUDA LibTorch 2.x".
#   docker build -t diffuse .
#   docker run --gpus all -v $PWD/runs:/work/runs diffuse train --config configs/fashion_unet.yaml
FROM nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04

ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu124/libtorch-cxx11-abi-shared-with-deps-2.5.1%2Bcu124.zip
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      g++ cmake ninja-build curl unzip ca-certificates \
      libopencv-dev libyaml-cpp-dev libspdlog-dev libgtest-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL "$LIBTORCH_URL" -o /tmp/libtorch.zip && unzip -q /tmp/libtorch.zip -d /opt && rm /tmp/libtorch.zip

WORKDIR /work
COPY . /work
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=/opt/libtorch \
    && cmake --build build \
    && (cd build && ctest --output-on-failure -LE gpu)
ENV LD_LIBRARY_PATH=/opt/libtorch/lib:$LD_LIBRARY_PATH
ENTRYPOINT ["/work/build/bin/diffuse"]
