# syntax=docker/dockerfile:1
#
# Cell Bridge daemon images. One file, two targets; always name one (without --target Docker
# builds the last stage, the GPU image):
#   docker build --target cpu -t cellbridge:cpu .     # onnxruntime CPU provider, node:20-bookworm-slim
#   docker build --target gpu -t cellbridge:gpu .     # CUDA 12 + cuDNN 9 (and WebGPU over Vulkan), needs internet
# Run (the daemon refuses to listen on 0.0.0.0 without a token; publish on the host's loopback):
#   docker run --rm --init -p 127.0.0.1:8765:8765 -e CELLBRIDGE_TOKEN=$(openssl rand -hex 32) cellbridge:cpu
#   docker run --rm --init --gpus all -p 127.0.0.1:8765:8765 -e CELLBRIDGE_TOKEN=... cellbridge:gpu
# See docs/docker.md. test/docker.test.ts checks this file (COPY sources, targets, user, port, health check, command).

ARG NODE_IMAGE=node:20-bookworm-slim
# onnxruntime-node 1.30's CUDA provider is built for CUDA 12.x + cuDNN 9.x (any 12.x runtime works).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# ---------------------------------------------------------------------------------------------
# build: install all dependencies, compile TypeScript to dist/, drop the dev dependencies.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
# .npmrc sets onnxruntime-node-install=skip: no CUDA download in the CPU build.
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: the root "prepare" script (tsc) would run before the sources are copied; the
# dependencies' own install scripts are not needed here (onnxruntime-node's only downloads CUDA
# libraries, which the gpu-deps stage asks for explicitly; bufferutil ships prebuilt binaries).
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY protocol/ ./protocol/
COPY bridge/ ./bridge/
# npm run build = tsc -p tsconfig.json: writes dist/bridge and dist/protocol.
RUN npm run build \
 && test -f dist/bridge/cli.js \
 && npm prune --omit=dev --ignore-scripts \
 && npm cache clean --force

# ---------------------------------------------------------------------------------------------
# cpu: slim runtime image. It comes right after build and before every CUDA/NuGet stage: Docker's
# classic builder builds every stage up to the --target in file order (BuildKit only those the target
# needs), so `--target cpu` never pulls the CUDA image or downloads from NuGet under either builder.
FROM ${NODE_IMAGE} AS cpu
LABEL org.opencontainers.image.title="Cell Bridge (CPU)" \
      org.opencontainers.image.description="Cell segmentation and classification daemon for QuPath (onnxruntime-node, CPU)"
WORKDIR /app
# ORT_DISABLE_TELEMETRY: no onnxruntime usage telemetry (device id, event queue); the daemon sets it too.
ENV NODE_ENV=production \
    ORT_DISABLE_TELEMETRY=1 \
    CELLBRIDGE_HOST=0.0.0.0 \
    CELLBRIDGE_PORT=8765 \
    CELLBRIDGE_MODELS=/app/models \
    CELLBRIDGE_DEVICE=cpu
# A font for the legend of `cellbridge overlay` (librsvg draws text with fontconfig; the slim image has
# no font at all, and the legend came out as empty boxes). DejaVu: 1.5 MB, from Debian.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
# Files stay owned by root: the daemon only reads them.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules/ ./node_modules/
COPY --from=build /app/dist/ ./dist/
# The bundled models (models/default.json names cellbridge-he-v2; v1 stays); .dockerignore leaves out
# models/training and the reference outputs. Extra models: mount a folder and set
# CELLBRIDGE_MODELS (or pass --models), see README.md, "Docker".
COPY models/ ./models/
# The node image's unprivileged user (uid 1000).
USER node
EXPOSE 8765
# `cellbridge health` connects like a client (WebSocket + initialize, CELLBRIDGE_PORT and
# CELLBRIDGE_TOKEN from the environment) and exits 0 only when a model is ready.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
  CMD ["node", "dist/bridge/cli.js", "health", "--timeout-s", "10"]
# `cellbridge serve` (package.json "start"). CELLBRIDGE_HOST=0.0.0.0 is refused by the daemon
# unless CELLBRIDGE_TOKEN (or --token) is given: no token is baked into the image.
ENTRYPOINT ["node", "dist/bridge/cli.js"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------
# gpu-deps: the same node_modules plus onnxruntime's CUDA 12 provider libraries (from NuGet).
# ONNXRUNTIME_NODE_INSTALL overrides .npmrc's onnxruntime-node-install=skip. Needs internet.
FROM build AS gpu-deps
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_shared.so

# ---------------------------------------------------------------------------------------------
# gpu: CUDA 12 + cuDNN 9 runtime with Node 20 (the node binary from the node image).
FROM ${CUDA_IMAGE} AS gpu
LABEL org.opencontainers.image.title="Cell Bridge (GPU)" \
      org.opencontainers.image.description="Cell segmentation and classification daemon for QuPath (onnxruntime-node, CUDA 12 / WebGPU / CPU)"
# Vulkan loader + GL dispatch libraries: onnxruntime-node's WebGPU provider runs on the NVIDIA
# Vulkan driver, which the NVIDIA Container Toolkit mounts when "graphics" is in the capabilities.
# fonts-dejavu-core: the legend of `cellbridge overlay` (as in the cpu image).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libgles2 libopengl0 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 cellbridge \
 && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /app --shell /usr/sbin/nologin cellbridge
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
ENV NODE_ENV=production \
    ORT_DISABLE_TELEMETRY=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    CELLBRIDGE_HOST=0.0.0.0 \
    CELLBRIDGE_PORT=8765 \
    CELLBRIDGE_MODELS=/app/models \
    CELLBRIDGE_DEVICE=auto
COPY --from=gpu-deps /app/package.json ./package.json
COPY --from=gpu-deps /app/node_modules/ ./node_modules/
COPY --from=gpu-deps /app/dist/ ./dist/
COPY models/ ./models/
USER cellbridge
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=15s --start-period=120s --retries=3 \
  CMD ["node", "dist/bridge/cli.js", "health", "--timeout-s", "10"]
# --device auto (CELLBRIDGE_DEVICE): CUDA, then WebGPU, then CPU; `docker logs` says which and why.
ENTRYPOINT ["node", "dist/bridge/cli.js"]
CMD ["serve"]
