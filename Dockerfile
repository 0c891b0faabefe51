# CUDA build of diffuse: Debian 12 (as CI), NVIDIA's CUDA 13.0 toolkit for Debian 12, and the
# pip torch 2.11.0 wheel for CUDA 13.0 (cu130) as LibTorch, so the CUDA and LibTorch versions
# match; CI builds and tests the same combination without Docker (scripts/test.sh, second
# half). Not built in our CI (no Docker engine or GPU there).
#   docker build -t diffuse .
#   docker run --gpus all -v $PWD/runs:/work/runs diffuse train --config configs/fashion_unet.yaml
FROM debian:12

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates curl \
    && curl -fsSL -o /tmp/cuda-keyring.deb \
         https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb \
    && dpkg -i /tmp/cuda-keyring.deb && rm /tmp/cuda-keyring.deb \
    && apt-get update -qq && apt-get install -y -qq --no-install-recommends \
         cuda-toolkit-13-0 cudnn9-cuda-13 libnccl2 libnccl-dev python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/cuda/bin:$PATH CUDA_HOME=/usr/local/cuda

WORKDIR /work
COPY . /work
# install_deps.sh brings Debian's packages (and Fashion-MNIST, so the example below finds
# its data); install_torch.sh the pinned wheel; the suite runs against it (gpu tests skip
# while building, which has no GPU).
RUN scripts/install_deps.sh && scripts/install_torch.sh \
    && BUILD_DIR=/work/build scripts/build.sh -DCMAKE_PREFIX_PATH="$(scripts/torch_cmake_path.sh)" \
    && (cd build && ctest --output-on-failure -LE gpu)
ENTRYPOINT ["/work/build/bin/diffuse"]
