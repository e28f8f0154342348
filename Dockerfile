# coldfusiond node image: `docker compose up` runs a 3-node mesh from it (see docker-compose.yml).
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts are skipped: the image already has Node 22, and tfjs-node-gpu's installer needs the internet
# (see the README's GPU section for an image with the native backend).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY test ./test
RUN node node_modules/typescript/bin/tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts

FROM node:22-bookworm-slim
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
