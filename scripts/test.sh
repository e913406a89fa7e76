#!/usr/bin/env bash
# `npm test`: installs what the suite needs (Debian packages, npm modules), builds, runs vitest.
# Extra arguments go to vitest, e.g. `npm test -- test/unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ensure.sh
ensure_packages \
  prometheus-pushgateway:/usr/bin/prometheus-pushgateway \
  redis-server:/usr/bin/redis-server \
  curl:/usr/bin/curl \
  prometheus:/usr/bin/prometheus \
  python3-prometheus-client:/usr/lib/python3/dist-packages/prometheus_client/__init__.py \
  golang-go:/usr/bin/go \
  golang-github-prometheus-client-golang-dev:/usr/share/gocode/src/github.com/prometheus/client_golang/prometheus/push/push.go \
  unzip:/usr/bin/unzip \
  make:/usr/bin/make \
  openssl:/usr/bin/openssl \
  yamllint:/usr/bin/yamllint
ensure_node_modules
ensure_build
exec npx vitest run "$@"
