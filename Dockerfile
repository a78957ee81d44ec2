# syntax=docker/dockerfile:1
# The openwechat relay. Build: docker build -t openwechat-relay .
# Run:   docker run -p 8000:8000 -v owc-data:/data openwechat-relay
# Settings are environment variables (docs/config.md); HOST is 0.0.0.0 inside the container only.
# Node 24 (the current LTS); the relay also runs on Node 22.

# 1. Production dependencies; better-sqlite3 is compiled here, so the build tools stay behind.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY packages ./packages
RUN npm ci --omit=dev --workspace @openwechat/relay --include-workspace-root \
 && npm cache clean --force

# 2. The bundles (esbuild): plain JavaScript, so the image needs no TypeScript loader. No install scripts
# run here (nothing native is needed to bundle).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages ./packages
COPY scripts ./scripts
RUN npm ci --ignore-scripts --workspace @openwechat/relay --include-workspace-root \
 && npm run build -- relay

# 3. The runtime image: no compiler, no npm cache, no sources, runs as the unprivileged `node` user.
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/packages/relay/package.json ./packages/relay/package.json
COPY --from=build /app/packages/relay/dist ./packages/relay/dist
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM is handled: streams are told to reconnect, in-flight requests finish, the store is closed.
# node is PID 1's direct command (exec form), so the signal reaches the relay itself.
STOPSIGNAL SIGTERM
CMD ["node", "packages/relay/dist/main.js"]
