#!/usr/bin/env bash
# `npm run demo`: a real Pushgateway on 127.0.0.1:9191 (admin API and lifecycle enabled, so you
# can see pushguard keep them closed) and pushguard on 127.0.0.1:9091 (API) and :9092 (metrics)
# with examples/demo.yaml. Ctrl-C stops everything it started.
# It also starts a real OIDC provider on 127.0.0.1:9093 (examples/oidc-provider.mjs) whose client
# demo-team-c / demo-team-c-secret gets JWT access tokens that pushguard accepts for team-c.
# Ports: PUSHGATEWAY_PORT, PUSHGUARD_PORT, PUSHGUARD_METRICS_PORT, OIDC_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ensure.sh
ensure_packages prometheus-pushgateway:/usr/bin/prometheus-pushgateway curl:/usr/bin/curl
ensure_node_modules
ensure_build

pg_port=${PUSHGATEWAY_PORT:-9191}
api_port=${PUSHGUARD_PORT:-9091}
metrics_port=${PUSHGUARD_METRICS_PORT:-9092}
oidc_port=${OIDC_PORT:-9093}
workdir=.tmp/demo
mkdir -p "$workdir"
sed -e "s/127.0.0.1:9191/127.0.0.1:${pg_port}/" \
    -e "s/127.0.0.1:9091/127.0.0.1:${api_port}/" \
    -e "s/127.0.0.1:9092/127.0.0.1:${metrics_port}/" \
    -e "s/127.0.0.1:9093/127.0.0.1:${oidc_port}/" \
    examples/demo.yaml >"$workdir/demo.yaml"

for port in "$pg_port" "$api_port" "$metrics_port" "$oidc_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port is already in use (a packaged pushgateway service? try: systemctl stop prometheus-pushgateway)" >&2
    echo "      or choose others: PUSHGATEWAY_PORT=... PUSHGUARD_PORT=... PUSHGUARD_METRICS_PORT=... OIDC_PORT=... npm run demo" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  echo "demo: stopped" >&2
}
trap cleanup INT TERM EXIT

prometheus-pushgateway --web.listen-address="127.0.0.1:${pg_port}" --web.enable-admin-api \
  --web.enable-lifecycle --log.level=warn --persistence.file="" &
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
  pushgateway        http://127.0.0.1:${pg_port}    (behind pushguard; admin API + lifecycle enabled)

Push as team-a (allowed):
  echo 'backup_last_success_seconds 1700000000' | curl -i --data-binary @- \\
    -H 'Authorization: Bearer demo-team-a-token' http://127.0.0.1:${api_port}/metrics/job/team-a-backup/instance/db1

Push team-b's job with team-a's token (403), push without a token (401), try to quit (403):
  echo 'x 1' | curl -i --data-binary @- -H 'Authorization: Bearer demo-team-a-token' http://127.0.0.1:${api_port}/metrics/job/team-b-backup
  echo 'x 1' | curl -i --data-binary @- http://127.0.0.1:${api_port}/metrics/job/team-a-backup
  curl -i -X PUT -H 'Authorization: Bearer demo-admin-token' http://127.0.0.1:${api_port}/-/quit

Push a HELP that is not UTF-8, which the Pushgateway would store and Prometheus then refuse to scrape (400):
  printf '# HELP backup_runs caf\\xe9\\nbackup_runs 1\\n' | curl -i --data-binary @- \\
    -H 'Authorization: Bearer demo-team-a-token' http://127.0.0.1:${api_port}/metrics/job/team-a-backup

Team c pushes with an OIDC access token (client_credentials grant from the demo IdP):
  TOKEN=\$(curl -s -u demo-team-c:demo-team-c-secret -d grant_type=client_credentials \
    http://127.0.0.1:${oidc_port}/token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  echo 'report_rows 1234' | curl -i --data-binary @- -H "Authorization: Bearer \$TOKEN" \
    http://127.0.0.1:${api_port}/metrics/job/team-c-report

Read it back (admin may read):
  curl -s -u admin:demo-admin-token http://127.0.0.1:${api_port}/metrics | grep backup_last_success

Tokens: demo-team-a-token (jobs team-a-*), demo-team-b-token (jobs team-b-*), demo-admin-token (everything);
team-c uses OIDC (jobs team-c-*, every series labelled team="team-c").
Why a 403 or a 400? node dist/main.js explain --config ${workdir}/demo.yaml --method PUT --path /metrics/job/x <<< demo-team-a-token
Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
echo "demo: a process exited" >&2
