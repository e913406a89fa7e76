#!/usr/bin/env bash
# `npm test`: installs what the suite needs (Debian packages, npm modules), builds, runs vitest.
# Extra arguments go to vitest, e.g. `npm test -- test/unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ensure.sh
ensure_packages \
  prometheus-pushgateway:/usr/bin/prometheus-pushgateway \
  curl:/usr/bin/curl \
  unzip:/usr/bin/unzip \
  make:/usr/bin/make
ensure_node_modules
ensure_build
exec npx vitest run "$@"
