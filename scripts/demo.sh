#!/usr/bin/env bash
# `npm run demo`: a real Pushgateway on 127.0.0.1:9191 (admin API and lifecycle enabled, so you
# can see pushguard keep them closed; its slow consistency check off, since pushguard's store
# index checks every push against the whole store instead), pushguard on 127.0.0.1:9091 (API)
# and :9092 (metrics) with examples/demo.yaml, and a real OIDC provider on 127.0.0.1:9093
# (examples/oidc-provider.mjs) whose client demo-team-c / demo-team-c-secret gets JWT access
# tokens that pushguard accepts for team-c. Ctrl-C stops everything it started.
# Ports: PUSHGATEWAY_PORT, PUSHGUARD_PORT, PUSHGUARD_METRICS_PORT, OIDC_PORT. Each set of ports
# gets its own working directory (.tmp/demo/<ports>/: the config and the OIDC provider's log),
# so demos on other ports run side by side without touching each other.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_port=${PUSHGATEWAY_PORT:-9191}
api_port=${PUSHGUARD_PORT:-9091}
metrics_port=${PUSHGUARD_METRICS_PORT:-9092}
oidc_port=${OIDC_PORT:-9093}
ports=("$pg_port" "$api_port" "$metrics_port" "$oidc_port")

# Ports first: a clash is reported at once, before anything is installed or built.
for port in "${ports[@]}"; do
  if ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    echo "demo: \"$port\" is not a port number" >&2
    exit 1
  fi
done
if [ "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" -ne ${#ports[@]} ]; then
  echo "demo: the four ports must differ (got ${ports[*]})" >&2
  exit 1
fi
for port in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port is already in use (another demo? a packaged pushgateway service: systemctl stop prometheus-pushgateway)" >&2
    echo "      or choose others: PUSHGATEWAY_PORT=... PUSHGUARD_PORT=... PUSHGUARD_METRICS_PORT=... OIDC_PORT=... npm run demo" >&2
    exit 1
  fi
done

source scripts/lib/ensure.sh
ensure_packages prometheus-pushgateway:/usr/bin/prometheus-pushgateway curl:/usr/bin/curl
ensure_node_modules
ensure_build

workdir=.tmp/demo/${api_port}-${metrics_port}-${pg_port}-${oidc_port}
mkdir -p "$workdir"
sed -e "s/127.0.0.1:9191/127.0.0.1:${pg_port}/" \
    -e "s/127.0.0.1:9091/127.0.0.1:${api_port}/" \
    -e "s/127.0.0.1:9092/127.0.0.1:${metrics_port}/" \
    -e "s/127.0.0.1:9093/127.0.0.1:${oidc_port}/" \
    examples/demo.yaml >"$workdir/demo.yaml"

pids=()
cleanup() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  echo "demo: stopped" >&2
}
trap cleanup INT TERM EXIT

prometheus-pushgateway --web.listen-address="127.0.0.1:${pg_port}" --web.enable-admin-api \
  --web.enable-lifecycle --push.disable-consistency-check --log.level=warn --persistence.file="" &
pids+=($!)
node examples/oidc-provider.mjs "$oidc_port" 2>"$workdir/oidc-provider.log" &
pids+=($!)
node dist/main.js serve --config "$workdir/demo.yaml" &
pids+=($!)

# wait_for URL: polls for up to 10 s; pushguard and the OIDC provider each take a moment to start.
wait_for() {
  for _ in $(seq 1 100); do
    curl -fs "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  curl -fs "$1" >/dev/null
}
wait_for "http://127.0.0.1:${metrics_port}/readyz" || { echo "demo: pushguard did not become ready" >&2; exit 1; }
if ! wait_for "http://127.0.0.1:${oidc_port}/.well-known/openid-configuration"; then
  echo "demo: the OIDC provider did not start; its log ($workdir/oidc-provider.log):" >&2
  cat "$workdir/oidc-provider.log" >&2
  exit 1
fi

cat <<MSG

pushguard demo is running
  pushguard API      http://127.0.0.1:${api_port}   (point your clients here)
  pushguard metrics  http://127.0.0.1:${metrics_port}/metrics
  pushgateway        http://127.0.0.1:${pg_port}   (behind pushguard; admin API + lifecycle enabled)
  OIDC provider      http://127.0.0.1:${oidc_port}   (client demo-team-c / demo-team-c-secret)
  config and logs    ${workdir}/

Tokens: demo-team-a-token (jobs team-a-*), demo-team-b-token (jobs team-b-*), demo-admin-token
(everything); team-c uses OIDC (jobs team-c-*). Try the README's Quick start commands, e.g.:
  echo 'backup_last_success_seconds 1700000000' | curl -i --data-binary @- \\
    -H 'Authorization: Bearer demo-team-a-token' http://127.0.0.1:${api_port}/metrics/job/team-a-backup
Why a 403 or a 400?
  echo demo-team-a-token | npx pushguard explain --config ${workdir}/demo.yaml --method PUT --path /metrics/job/x
Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
echo "demo: a process exited" >&2
