# syntax=docker/dockerfile:1
# pushguard: an authenticating gateway in front of a Prometheus Pushgateway.
#   docker build -t pushguard --build-arg VERSION=$(node -p 'require("./package.json").version') \
#     --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
# For a reproducible release build, pin the base image by digest, e.g. the one
# `docker buildx imagetools inspect node:24-bookworm-slim` prints:
#     --build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:<digest>
# A fork sets SOURCE_URL (and URL) to its own repository.
# The image runs as UID 10001 with nothing to write: it works with a read-only root filesystem.
# test/chart/dockerfile.test.ts replays the steps below from a clean copy of the repo and starts it.

# A tag, or a tag pinned by digest (`name:tag@sha256:...`).
ARG NODE_IMAGE=node:24-bookworm-slim

# Compile TypeScript with the dev dependencies.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
# Declared again: an ARG from before the first FROM is otherwise empty inside a stage.
ARG NODE_IMAGE
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE_URL=https://github.com/pushguard/pushguard
ARG URL=https://github.com/pushguard/pushguard
LABEL org.opencontainers.image.title="pushguard" \
      org.opencontainers.image.description="Authenticating, authorizing gateway for the Prometheus Pushgateway" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.url="${URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
USER 10001:10001
# 9091: the push API (the Pushgateway's port); 9092: /metrics, /healthz, /readyz.
EXPOSE 9091 9092
ENTRYPOINT ["node", "--max-semi-space-size=4", "/app/dist/main.js"]
CMD ["serve", "--config", "/etc/pushguard/config/config.yaml"]
