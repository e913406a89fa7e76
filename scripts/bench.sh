#!/usr/bin/env bash
# `npm run bench`: installs what the benchmark needs (Debian prometheus-pushgateway, nginx-light,
# wrk, apache2-utils for htpasswd; npm modules), builds, and runs bench/run.mjs. Never part of
# `npm test`. Arguments go to bench/run.mjs: `npm run bench -- --out FILE [--profile DIR] [--quick]`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ensure.sh
ensure_packages \
  prometheus-pushgateway:/usr/bin/prometheus-pushgateway \
  nginx-light:/usr/sbin/nginx \
  wrk:/usr/bin/wrk \
  apache2-utils:/usr/bin/htpasswd
ensure_node_modules
ensure_build
exec node bench/run.mjs "$@"
