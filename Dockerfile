# coldfusiond images (see docker-compose.yml).
#   docker build -t coldfusiond:local .                 small CPU image (wasm backend), runs as `node`
#   docker build --target gpu -t coldfusiond:gpu .      CUDA 11.2 + cuDNN 8.1 with @tensorflow/tfjs-node-gpu

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts are skipped: the image already has Node 22, and tfjs-node-gpu's installer needs the
# internet (the gpu target below runs it).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
# Only the daemon's code and its runtime dependencies go on: no tests, no dev or GPU packages.
RUN node node_modules/typescript/bin/tsc -p tsconfig.json \
  && rm -rf dist/test \
  && npm prune --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

# The native TensorFlow backend on NVIDIA GPUs: libtensorflow 2.9 (what tfjs-node-gpu 4.22 loads)
# is built against CUDA 11.2 and cuDNN 8.1. Fusion stays on the CPU, so GPU and CPU nodes agree.
FROM nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04 AS gpu
COPY --from=node:22-bookworm-slim /usr/local/bin/node /usr/local/bin/node
COPY --from=node:22-bookworm-slim /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
  && useradd --uid 1000 --create-home --shell /bin/sh node \
  && mkdir -p /app /data /shared && chown node:node /app /data /shared
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# tfjs-node-gpu's own install script downloads its libtensorflow build; no other script runs
# (the package's `prepare` would need the dev dependencies).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm rebuild @tensorflow/tfjs-node-gpu \
  && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY docker ./docker
RUN ln -s /app/bin/coldfusiond.js /usr/local/bin/coldfusiond
USER node
VOLUME ["/data"]
EXPOSE 4001 8080
ENTRYPOINT ["coldfusiond"]
CMD ["--help"]

# The default target (last): `docker build .` and `docker compose build` make this small CPU image.
FROM node:22-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY docker ./docker
RUN ln -s /app/bin/coldfusiond.js /usr/local/bin/coldfusiond \
  && mkdir -p /data /shared && chown node:node /data /shared
USER node
VOLUME ["/data"]
EXPOSE 4001 8080
ENTRYPOINT ["coldfusiond"]
CMD ["--help"]
