#!/usr/bin/env node
// `npm run bench` (via scripts/bench.sh): pushguard against direct Pushgateway and nginx, measured
// in one run on this machine. Never part of `npm test`. See README "Performance".
//
//   npm run bench [-- --out FILE] [--duration SEC] [--warmup SEC] [--soak SEC] [--profile DIR] [--quick]
//
// For each Pushgateway mode (default consistency check, and --push.disable-consistency-check) it
// starts a fresh Pushgateway (prefilled with the ~700 groups the mix writes), pushguard
// (`node dist/main.js serve`, static-token auth, 50 teams of ACL rules, rate limiting with limits
// far above the load) and nginx (nginx-light: one server with auth_basic from an htpasswd file,
// one without auth), then drives the same wrk Lua request mix (bench/push.lua: small text PUTs
// over 700 groups) at each, at 1 and 32 connections. It also measures 401 rejections (a wrong
// token) against pushes, pushguard's RSS after load, and RSS after a soak with 10k distinct
// identities pushing 10k distinct jobs. Everything listens on 127.0.0.1 only.
//
// Validation cost: against one more Pushgateway (check off, so its own per-push cost is small),
// two pushguards differing only in `validation.enabled` take the same small-push mix and a
// 1,000-series text push (bench/push-1000.lua), at 1 and 32 connections, measured in the order
// on, off, off, on (half the duration each) so drift on the shared cores falls on both alike.
//
// Safe fast mode: one more Pushgateway with --push.disable-consistency-check, prefilled the same
// way, behind a pushguard with `store.index.enabled: true` (which checks every push against the
// whole store instead), same mix at 1 and 32 connections; compared with the direct default-mode
// row (ratios.safe_fast_vs_direct_default). Any non-2xx there (a 409 from the index) fails the
// bench at once. bench/index-memory.mjs then measures the index's heap per stored series.
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatSummary, summarize } from "./cpuprofile-summary.mjs";
import { cpuSeconds, cpuTimes, freePort, memory, run, start, waitForHttp } from "./lib.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LUA = join(ROOT, "bench", "push.lua");
const LUA_1000 = join(ROOT, "bench", "push-1000.lua");
const INDEX_MEMORY = join(ROOT, "bench", "index-memory.mjs");
const MAIN = join(ROOT, "dist", "main.js");
const BIN = {
  pushgateway: process.env.PUSHGATEWAY_BINARY ?? "/usr/bin/prometheus-pushgateway",
  nginx: process.env.NGINX_BINARY ?? "/usr/sbin/nginx",
  wrk: process.env.WRK_BINARY ?? "/usr/bin/wrk",
  htpasswd: process.env.HTPASSWD_BINARY ?? "/usr/bin/htpasswd",
};
const GROUPS = 700;
const SOAK_IDENTITIES = 10_000;
const FILLER_TEAMS = 49;
const BATCH_GROUPS = 20; // groups the 1,000-series push is spread over
const HIGH = 1_000_000; // rate-limit rate and burst: far above anything a 2-core machine can send

const { values: options } = parseArgs({
  options: {
    out: { type: "string" },
    duration: { type: "string" },
    warmup: { type: "string" },
    soak: { type: "string" },
    profile: { type: "string" },
    quick: { type: "boolean", default: false },
  },
});
const DURATION = Number(options.duration ?? (options.quick ? 3 : 8));
const WARMUP = Number(options.warmup ?? (options.quick ? 1 : 2));
const SOAK = Number(options.soak ?? (options.quick ? 6 : 20));

for (const [name, path] of Object.entries({ ...BIN, "dist/main.js": MAIN })) {
  if (!existsSync(path)) {
    console.error(
      `bench: ${name} not found at ${path} (scripts/bench.sh installs and builds what is missing)`,
    );
    process.exit(1);
  }
}

const work = mkdtempSync(join(tmpdir(), "pushguard-bench-"));
chmodSync(work, 0o755); // nginx workers may run as nobody
const running = new Set();
const track = (proc) => {
  running.add(proc);
  proc.exited.then(() => running.delete(proc));
  return proc;
};
const cleanup = async () => {
  await Promise.all([...running].map((proc) => proc.stop(2000)));
  rmSync(work, { recursive: true, force: true });
};
process.on("SIGINT", () => cleanup().then(() => process.exit(130)));

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const TOKEN = randomBytes(24).toString("hex");
const WRONG_TOKEN = randomBytes(24).toString("hex");
const BASIC_USER = "bench";
const basic = (user, password) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const log = (message) => process.stderr.write(`bench: ${message}\n`);

// ---------------------------------------------------------------------------------------------
// The peers

async function startPushgateway(mode) {
  const port = await freePort();
  const args = [`--web.listen-address=127.0.0.1:${port}`, "--persistence.file=", "--log.level=warn"];
  if (mode === "off") args.push("--push.disable-consistency-check");
  const proc = track(start(BIN.pushgateway, args));
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/-/ready`, proc);
  return { url, port, proc };
}

/** Writes the ~700 groups once, so every target faces the same store size from its first request. */
async function prefill(url) {
  const body = (i) =>
    `# TYPE bench_last_success_seconds gauge\nbench_last_success_seconds ${1700000000 + i}\n` +
    `# TYPE bench_items_processed gauge\nbench_items_processed{kind="rows"} ${i}\n`;
  let next = 0;
  const worker = async () => {
    while (next < GROUPS) {
      const i = next++;
      const response = await fetch(`${url}/metrics/job/bench-${i}/instance/i${i}`, {
        method: "PUT",
        body: body(i),
      });
      if (response.status !== 200 && response.status !== 202)
        throw new Error(`prefill: ${response.status} ${await response.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

function rateLimitSupported() {
  const schema = join(ROOT, "dist", "config", "schema.js");
  return existsSync(schema) && readFileSync(schema, "utf8").includes("rateLimit");
}

function benchConfig(upstream, api, metrics, { validation = true, index = false } = {}) {
  const identities = [`    - { name: bench-ci, sha256: ${sha256(TOKEN)} }`];
  const teams = [];
  for (let i = 0; i < FILLER_TEAMS; i++) {
    identities.push(`    - { name: filler-${i}, sha256: ${sha256(`filler-token-${i}-${TOKEN}`)} }`);
    teams.push(
      `  - { name: filler-${i}, members: [filler-${i}], jobs: ["filler-${i}-*"], actions: [push, delete] }`,
    );
  }
  // The bench team comes last: the policy walks past every other team first.
  teams.push(`  - { name: bench, members: [bench-ci], jobs: ["bench-*"], actions: [push, delete] }`);
  return `listen: { api: "${api}", metrics: "${metrics}" }
upstream: { url: "${upstream}" }
identities:
  static:
${identities.join("\n")}
teams:
${teams.join("\n")}
${rateLimitYaml(["{ scope: identity, rate: RATE, burst: RATE }", "{ scope: team, team: bench, rate: RATE, burst: RATE }"])}
validation: { enabled: ${validation} }
store: { index: { enabled: ${index} } }
log: { level: info }
`;
}

function rateLimitYaml(rules) {
  if (!rateLimitSupported()) return "";
  return `rateLimit:
  authFailures: { rate: ${HIGH}, burst: ${HIGH} }
  rules:
${rules.map((rule) => `    - ${rule.replaceAll("RATE", String(HIGH))}`).join("\n")}`;
}

function soakConfig(upstream, api, metrics) {
  const identities = [];
  const teams = [];
  for (let team = 0; team < SOAK_IDENTITIES / 100; team++) {
    const members = [];
    for (let i = team * 100; i < (team + 1) * 100; i++) {
      identities.push(`    - { name: soak-${i}, sha256: ${sha256(`soak-token-${i}`)} }`);
      members.push(`soak-${i}`);
    }
    teams.push(
      `  - { name: soak-t${team}, members: [${members.join(", ")}], jobs: ["soak-t${team}-*"], actions: [push, delete] }`,
    );
  }
  return `listen: { api: "${api}", metrics: "${metrics}" }
upstream: { url: "${upstream}" }
identities:
  static:
${identities.join("\n")}
teams:
${teams.join("\n")}
${rateLimitYaml(["{ scope: identity, rate: RATE, burst: RATE }"])}
log: { level: info }
`;
}

/** The Node flags pushguard's own bin runs with (its `#!/usr/bin/env -S node ...` line). */
const BIN_NODE_ARGS = (
  readFileSync(MAIN, "utf8")
    .split("\n", 1)[0]
    .match(/^#!\/usr\/bin\/env -S node (.*)$/)?.[1] ?? ""
)
  .split(" ")
  .filter(Boolean);

async function startPushguard(name, config, { nodeArgs = BIN_NODE_ARGS } = {}) {
  const api = `127.0.0.1:${await freePort()}`;
  const metrics = `127.0.0.1:${await freePort()}`;
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, config(api, metrics));
  // Audit lines go to /dev/null: pino still formats and writes every one, as in production.
  const proc = track(
    start(process.execPath, [...nodeArgs, MAIN, "serve", "--config", file], { stdout: "ignore" }),
  );
  await waitForHttp(`http://${metrics}/readyz`, proc, 30_000);
  return { url: `http://${api}`, metricsUrl: `http://${metrics}`, proc };
}

async function startNginx(upstreamPort) {
  const dir = join(work, `nginx-${upstreamPort}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const htpasswd = join(dir, "htpasswd");
  // htpasswd's default scheme (APR1-MD5), what most setups use; bcrypt would be far slower.
  const made = await run(BIN.htpasswd, ["-c", "-b", "-i", htpasswd, BASIC_USER], { input: TOKEN });
  if (made.code !== 0) {
    // Older htpasswd without -i: the password as an argument (local only, never logged).
    const fallback = await run(BIN.htpasswd, ["-c", "-b", htpasswd, BASIC_USER, TOKEN]);
    if (fallback.code !== 0) throw new Error(`htpasswd failed: ${made.stderr}${fallback.stderr}`);
  }
  chmodSync(htpasswd, 0o644);
  const basicPort = await freePort();
  const plainPort = await freePort();
  const proxy = `proxy_pass http://pushgateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";`;
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off;
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log combined buffer=64k flush=1s;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream pushgateway {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${basicPort};
    location / {
      auth_basic "pushgateway";
      auth_basic_user_file ${htpasswd};
      ${proxy}
    }
  }
  server {
    listen 127.0.0.1:${plainPort};
    location / {
      ${proxy}
    }
  }
}
`,
  );
  const proc = track(
    start(BIN.nginx, ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")]),
  );
  await waitForHttp(`http://127.0.0.1:${plainPort}/-/ready`, proc);
  return { basicUrl: `http://127.0.0.1:${basicPort}`, plainUrl: `http://127.0.0.1:${plainPort}`, proc };
}

// ---------------------------------------------------------------------------------------------
// Load

async function wrk(url, { connections, seconds, env = {}, script = LUA }) {
  const result = await run(
    BIN.wrk,
    ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "-s", script, url],
    { env: { ...process.env, BENCH_GROUPS: String(GROUPS), BENCH_AUTH: "", BENCH_PATHS: "groups", ...env } },
  );
  const line = /^BENCH_JSON (.*)$/m.exec(result.stdout)?.[1];
  if (result.code !== 0 || !line)
    throw new Error(`wrk failed (${result.code}):\n${result.stdout}${result.stderr}`);
  const raw = JSON.parse(line);
  const errors = raw.errors;
  return {
    requests: raw.requests,
    duration_s: raw.duration_us / 1e6,
    rps: raw.requests / (raw.duration_us / 1e6),
    p50_ms: raw.latency_us.p50 / 1000,
    p90_ms: raw.latency_us.p90 / 1000,
    p99_ms: raw.latency_us.p99 / 1000,
    max_ms: raw.latency_us.max / 1000,
    non2xx: errors.status,
    socket_errors: errors.connect + errors.read + errors.write + errors.timeout,
  };
}

const results = [];
const latencyRepeats = [];

/** The proxy's CPU per request, and the share of it spent in the kernel (loopback TCP is costly). */
function proxyCpu(spent, perRequest) {
  if (!spent) return { proxy_cpu_us_per_req: null, proxy_cpu_sys_pct: null };
  const { user, sys } = spent;
  return {
    proxy_cpu_us_per_req: perRequest(user + sys),
    proxy_cpu_sys_pct: user + sys > 0 ? Math.round((100 * sys) / (user + sys)) : null,
  };
}

/** One measured wrk run against a target, with the CPU time the proxy and the Pushgateway spent. */
async function sample({
  url,
  auth,
  connections,
  seconds = DURATION,
  proxyPid,
  proxyChildren = false,
  upstreamPid,
  script,
  env = {},
}) {
  const proxyTimes = () => (proxyPid ? cpuTimes(proxyPid, { children: proxyChildren }) : undefined);
  const proxyBefore = proxyTimes();
  const upstreamBefore = cpuSeconds(upstreamPid);
  const measured = await wrk(url, { connections, seconds, env: { ...env, BENCH_AUTH: auth }, script });
  const proxyAfter = proxyTimes();
  return {
    ...measured,
    proxyCpu: proxyBefore && {
      user: proxyAfter.user - proxyBefore.user,
      sys: proxyAfter.sys - proxyBefore.sys,
    },
    upstreamCpu: cpuSeconds(upstreamPid) - upstreamBefore,
  };
}

/**
 * Records one cell of the table from samples of the same target under the same load: counts and
 * CPU summed, latency percentiles averaged weighted by requests (exact for a single sample).
 */
function record({ mode, target, kind = "push", connections }, samples) {
  const sum = (field) => samples.reduce((total, one) => total + one[field], 0);
  const requests = sum("requests");
  const weighted = (field) => samples.reduce((total, one) => total + one[field] * one.requests, 0) / requests;
  const perRequest = (seconds) => Math.round((seconds * 1e6) / Math.max(1, requests));
  const proxySpent = samples.every((one) => one.proxyCpu) && {
    user: samples.reduce((total, one) => total + one.proxyCpu.user, 0),
    sys: samples.reduce((total, one) => total + one.proxyCpu.sys, 0),
  };
  const result = {
    mode,
    target,
    kind,
    connections,
    requests,
    rps: requests / sum("duration_s"),
    p50_ms: weighted("p50_ms"),
    p90_ms: weighted("p90_ms"),
    p99_ms: weighted("p99_ms"),
    max_ms: Math.max(...samples.map((one) => one.max_ms)),
    non2xx: sum("non2xx"),
    socket_errors: sum("socket_errors"),
    ...(samples.length > 1 ? { samples: samples.length } : {}),
    ...proxyCpu(proxySpent, perRequest),
    upstream_cpu_us_per_req: perRequest(sum("upstreamCpu")),
  };
  results.push(result);
  log(
    `${mode.padEnd(7)} ${target.padEnd(26)} ${kind.padEnd(9)} c=${String(connections).padEnd(2)} ` +
      `${result.rps.toFixed(0).padStart(6)} req/s  p50 ${result.p50_ms.toFixed(2)} ms  p99 ${result.p99_ms.toFixed(2)} ms` +
      (result.non2xx ? `  non-2xx ${result.non2xx}` : ""),
  );
  return result;
}

async function warmUp({ url, connections, auth, script, env = {} }) {
  if (WARMUP > 0) await wrk(url, { connections, seconds: WARMUP, env: { ...env, BENCH_AUTH: auth }, script });
}

/** Warm up, then measure one target; CPU time of the proxy and the Pushgateway per request too. */
async function measure({ mode, target, kind, ...load }) {
  await warmUp(load);
  return record({ mode, target, kind, connections: load.connections }, [await sample(load)]);
}

async function requestsByCode(metricsUrl, code) {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^pushguard_requests_total\{([^}]*)\} (\S+)$/gm)) {
    if (new RegExp(`code="${code}"`).test(match[1])) total += Number(match[2]);
  }
  return total;
}

// ---------------------------------------------------------------------------------------------

const MODES = [
  { mode: "off", label: "--push.disable-consistency-check" },
  { mode: "default", label: "default (consistency check on)" },
];
const rss = {};
const profiles = {};

async function benchMode({ mode }) {
  log(`mode ${mode}: starting pushgateway, pushguard, nginx`);
  const pushgateway = await startPushgateway(mode);
  await prefill(pushgateway.url);
  const pushguard = await startPushguard(`pushguard-${mode}`, (api, metrics) =>
    benchConfig(pushgateway.url, api, metrics),
  );
  const nginx = await startNginx(pushgateway.port);
  rss[`${mode}_idle`] = memory(pushguard.proc.pid);

  const targets = [
    { target: "direct", url: pushgateway.url, auth: "" },
    { target: "nginx", url: nginx.plainUrl, auth: "", proxyPid: nginx.proc.pid, proxyChildren: true },
    {
      target: "nginx-basic",
      url: nginx.basicUrl,
      auth: basic(BASIC_USER, TOKEN),
      proxyPid: nginx.proc.pid,
      proxyChildren: true,
    },
    { target: "pushguard", url: pushguard.url, auth: `Bearer ${TOKEN}`, proxyPid: pushguard.proc.pid },
  ];
  for (const connections of [1, 32]) {
    for (const target of targets) {
      await measure({ mode, connections, upstreamPid: pushgateway.proc.pid, ...target });
    }
  }
  if (mode === "off") {
    // c=1 latency is noisy on 2 cores (where the scheduler puts wrk and the servers): a second
    // direct/pushguard pair, averaged with the first in latency.added_p50_ms.
    for (const target of [targets[3], targets[0]]) {
      const repeat = await wrk(target.url, {
        connections: 1,
        seconds: DURATION,
        env: { BENCH_AUTH: target.auth },
      });
      latencyRepeats.push({
        target: target.target,
        p50_ms: repeat.p50_ms,
        p99_ms: repeat.p99_ms,
        rps: repeat.rps,
      });
    }
    const before = await requestsByCode(pushguard.metricsUrl, "401");
    const limitedBefore = await requestsByCode(pushguard.metricsUrl, "429");
    const rejected = await measure({
      mode,
      target: "pushguard",
      kind: "401",
      url: pushguard.url,
      auth: `Bearer ${WRONG_TOKEN}`,
      connections: 32,
      proxyPid: pushguard.proc.pid,
      upstreamPid: pushgateway.proc.pid,
    });
    const counted = (await requestsByCode(pushguard.metricsUrl, "401")) - before;
    const limited = (await requestsByCode(pushguard.metricsUrl, "429")) - limitedBefore;
    // Every response must be a 401, none a 429 from the auth-failure limiter (pushguard counts both;
    // the counts include the warm-up).
    rejected.all_401 = rejected.non2xx === rejected.requests && counted >= rejected.requests && limited === 0;
    if (!rejected.all_401) log(`warning: rejections were not all 401s (${counted} 401s, ${limited} 429s)`);
    await measure({
      mode,
      target: "nginx-basic",
      kind: "401",
      url: nginx.basicUrl,
      auth: basic(BASIC_USER, WRONG_TOKEN),
      connections: 32,
      proxyPid: nginx.proc.pid,
      proxyChildren: true,
      upstreamPid: pushgateway.proc.pid,
    });
  }
  rss[`${mode}_after_load`] = { ...memory(pushguard.proc.pid), ...(await heapStats(pushguard.metricsUrl)) };
  await pushguard.proc.stop();

  if (options.profile) {
    await profileRun(`${mode}-push`, pushgateway, `Bearer ${TOKEN}`);
    if (mode === "off") await profileRun(`${mode}-401`, pushgateway, `Bearer ${WRONG_TOKEN}`);
  }
  await nginx.proc.stop();
  await pushgateway.proc.stop();
}

/** Waits until the Pushgateway holds `count` groups (with the check off it stores a push after its 202). */
async function waitForGroups(url, count) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const stored = ((await (await fetch(`${url}/api/v1/metrics`)).json()).data ?? []).length;
    if (stored >= count) return stored;
    if (Date.now() > deadline) throw new Error(`pushgateway holds ${stored} groups, not ${count}`);
    await sleep(50);
  }
}

/** A gauge or series of pushguard's own metrics, summed over the series whose labels match. */
async function pushguardMetric(metricsUrl, name, labels = "") {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, "gm"))) {
    if ((match[1] ?? "").includes(labels)) total += Number(match[2]);
  }
  return total;
}

const safeFast = {};
let indexMemoryResult;

/**
 * Safe fast mode: a Pushgateway without its consistency check, behind a pushguard whose store
 * index checks each push against everything stored. The prefilled groups must all be in the index
 * and every push of the mix accepted: any non-2xx (a 409 from the index) stops the bench.
 */
async function benchSafeFast() {
  const mode = "safe-fast";
  log(
    "safe fast mode: pushgateway with --push.disable-consistency-check, pushguard with store.index.enabled",
  );
  const pushgateway = await startPushgateway("off");
  await prefill(pushgateway.url);
  await waitForGroups(pushgateway.url, GROUPS);
  const pushguard = await startPushguard("pushguard-safe-fast", (api, metrics) =>
    benchConfig(pushgateway.url, api, metrics, { index: true }),
  );
  const indexed = await pushguardMetric(pushguard.metricsUrl, "pushguard_team_groups", 'team="bench"');
  if (indexed < GROUPS)
    throw new Error(`safe fast mode: the store index holds ${indexed} of the ${GROUPS} prefilled groups`);
  // Is the index on? A family another group stores as a gauge, pushed as a counter, must get a 409.
  const clash = await fetch(`${pushguard.url}/metrics/job/bench-clash`, {
    method: "PUT",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain; version=0.0.4" },
    body: "# TYPE bench_items_processed counter\nbench_items_processed 1\n",
  });
  const clashText = await clash.text();
  if (clash.status !== 409)
    throw new Error(`safe fast mode: a type clash got ${clash.status}, not 409: ${clashText}`);
  const loads = { auth: `Bearer ${TOKEN}`, proxyPid: pushguard.proc.pid, upstreamPid: pushgateway.proc.pid };
  const conflictsBefore = await requestsByCode(pushguard.metricsUrl, "409");
  const refusedBefore = await requestsByCode(pushguard.metricsUrl, "[^2]\\d\\d");
  for (const connections of [1, 32]) {
    const result = await measure({ mode, target: "pushguard", connections, url: pushguard.url, ...loads });
    if (result.non2xx > 0 || result.socket_errors > 0) {
      const conflicts = (await requestsByCode(pushguard.metricsUrl, "409")) - conflictsBefore;
      throw new Error(
        `safe fast mode, c=${connections}: ${result.non2xx} non-2xx responses (${conflicts} of them 409s from the store index), ${result.socket_errors} socket errors`,
      );
    }
  }
  // Warm-ups included: not one push of the mix may have been refused.
  const conflicts = (await requestsByCode(pushguard.metricsUrl, "409")) - conflictsBefore;
  const refused = (await requestsByCode(pushguard.metricsUrl, "[^2]\\d\\d")) - refusedBefore;
  if (refused > 0)
    throw new Error(`safe fast mode: pushguard refused ${refused} pushes of the mix (${conflicts} with 409)`);
  Object.assign(safeFast, {
    indexed_groups: indexed,
    clash_status: clash.status,
    conflicts_409: conflicts,
    refused,
    groups_stored: await waitForGroups(pushgateway.url, GROUPS),
  });
  await pushguard.proc.stop();
  await pushgateway.proc.stop();
}

/** bench/index-memory.mjs in its own process: heap bytes the store index holds per stored series. */
async function indexMemory() {
  log("store index memory: 10,000 groups x 100 series (bench/index-memory.mjs)");
  const result = await run(process.execPath, ["--expose-gc", INDEX_MEMORY, "--json"]);
  const line = /^INDEX_MEMORY_JSON (.*)$/m.exec(result.stdout)?.[1];
  if (result.code !== 0 || !line)
    throw new Error(`index-memory failed (${result.code}):\n${result.stdout}${result.stderr}`);
  const measured = JSON.parse(line);
  log(`store index: ${measured.index_bytes_per_series} bytes per series (${measured.series} series)`);
  return measured;
}

const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/**
 * Runs a separate pushguard under `node --cpu-prof`, loads it at c=32, stops it (the profile is
 * written on exit) and summarizes self time over the measured window only (start-up and warm-up
 * left out: V8's profile clock is CLOCK_MONOTONIC, like process.hrtime here).
 */
async function profileRun(name, pushgateway, auth, { script, env: scriptEnv = {}, validation = true } = {}) {
  const dir = resolve(options.profile);
  mkdirSync(dir, { recursive: true });
  const existing = new Set(readdirSync(dir));
  log(`profiling pushguard (--cpu-prof), ${name}, c=32 for ${DURATION} s into ${dir}`);
  const profiled = await startPushguard(
    `pushguard-profiled-${name}`,
    (api, metrics) => benchConfig(pushgateway.url, api, metrics, { validation }),
    {
      nodeArgs: [...BIN_NODE_ARGS, "--cpu-prof", "--cpu-prof-dir", dir],
    },
  );
  const env = { ...scriptEnv, BENCH_AUTH: auth };
  await wrk(profiled.url, { connections: 32, seconds: WARMUP, env, script });
  const from = monotonicMicros();
  const load = await wrk(profiled.url, { connections: 32, seconds: DURATION, env, script });
  const to = monotonicMicros();
  await profiled.proc.stop(15_000);
  const file = readdirSync(dir).find((entry) => entry.endsWith(".cpuprofile") && !existing.has(entry));
  if (!file) {
    log("warning: no .cpuprofile was written (did pushguard exit cleanly on SIGTERM?)");
    return;
  }
  const summary = summarize(JSON.parse(readFileSync(join(dir, file), "utf8")), { from, to });
  const text = formatSummary(summary, 30);
  writeFileSync(
    join(dir, `${name}.summary.txt`),
    `${file}, ${load.rps.toFixed(0)} req/s while profiled\n\n${text}\n`,
  );
  profiles[name] = {
    file: join(dir, file),
    window_us: { from, to },
    rps_while_profiled: round(load.rps, 0),
    busy_ms: round(summary.busyMs, 0),
    functions: summary.functions
      .slice(0, 30)
      .map((f) => ({ ...f, ms: round(f.ms, 1), pct: round(f.pct, 2) })),
    origins: summary.origins.slice(0, 20).map((f) => ({ ...f, ms: round(f.ms, 1), pct: round(f.pct, 2) })),
  };
  log(`profile ${name}: ${join(dir, file)} (summary in ${name}.summary.txt)`);
}

/** Heap and external memory as pushguard's own metrics report them, in MiB. */
async function heapStats(metricsUrl) {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const value = (name) =>
    Number(new RegExp(`^pushguard_${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN) / 2 ** 20;
  return {
    heapUsedMiB: value("nodejs_heap_size_used_bytes"),
    heapTotalMiB: value("nodejs_heap_size_total_bytes"),
    externalMiB: value("nodejs_external_memory_bytes"),
  };
}

async function soak() {
  log(`soak: ${SOAK_IDENTITIES} identities pushing ${SOAK_IDENTITIES} distinct jobs for ${SOAK} s at c=32`);
  const pushgateway = await startPushgateway("off");
  const started = Date.now();
  const pushguard = await startPushguard("pushguard-soak", (api, metrics) =>
    soakConfig(pushgateway.url, api, metrics),
  );
  const startupMs = Date.now() - started;
  const idle = memory(pushguard.proc.pid);
  const load = await wrk(pushguard.url, {
    connections: 32,
    seconds: SOAK,
    env: { BENCH_PATHS: "identities", BENCH_GROUPS: String(SOAK_IDENTITIES) },
  });
  const after = { ...memory(pushguard.proc.pid), ...(await heapStats(pushguard.metricsUrl)) };
  const groups = ((await (await fetch(`${pushgateway.url}/api/v1/metrics`)).json()).data ?? []).length;
  await pushguard.proc.stop();
  await pushgateway.proc.stop();
  rss.soak = {
    identities: SOAK_IDENTITIES,
    startup_ms: startupMs,
    idle,
    after,
    groups_stored: groups,
    ...load,
  };
  log(
    `soak: ${load.requests} pushes (${load.rps.toFixed(0)}/s, non-2xx ${load.non2xx}), ${groups} groups stored, ` +
      `RSS ${idle.rssMiB.toFixed(0)} MiB idle -> ${after.rssMiB.toFixed(0)} MiB after (peak ${after.peakMiB.toFixed(0)} MiB)`,
  );
}

// ---------------------------------------------------------------------------------------------
// Validation cost

/**
 * The 1,000-series push: 10 gauge families with HELP and TYPE, 100 series each (labels stage and
 * shard), ~66 KB; what a batch job reporting per-partition results sends.
 */
function batchBody() {
  const lines = [];
  for (let family = 1; family <= 10; family++) {
    const name = `bench_batch_partition_rows_${family}`;
    lines.push(`# HELP ${name} Rows handled per stage and shard.`, `# TYPE ${name} gauge`);
    for (const stage of ["extract", "transform", "load", "verify"]) {
      for (let shard = 0; shard < 25; shard++) {
        lines.push(`${name}{stage="${stage}",shard="${shard}"} ${family * 100_000 + shard * 37}.5`);
      }
    }
  }
  return `${lines.join("\n")}\n`;
}

const BATCH_BODY = batchBody();
const BATCH_SERIES = (BATCH_BODY.match(/^[^#]/gm) ?? []).length;
const batchAccepted = {};

/** PUTs the 1,000-series body to every batch group; each must be accepted (200 or 202). */
async function pushBatch(url, auth) {
  const statuses = new Set();
  for (let i = 0; i < BATCH_GROUPS; i++) {
    const response = await fetch(`${url}/metrics/job/bench-batch-${i}/instance/i${i}`, {
      method: "PUT",
      headers: { "content-type": "text/plain; version=0.0.4", ...(auth ? { authorization: auth } : {}) },
      body: BATCH_BODY,
    });
    const text = await response.text();
    if (response.status !== 200 && response.status !== 202)
      throw new Error(`1,000-series push via ${url}: ${response.status} ${text}`);
    statuses.add(response.status);
  }
  return [...statuses];
}

/**
 * The series the Pushgateway holds in the first batch group, once it holds all of them or after
 * two seconds (with the consistency check off it answers 202 and stores the push afterwards).
 */
async function storedBatchSeries(pushgatewayUrl) {
  const deadline = Date.now() + 2000;
  for (;;) {
    const { data = [] } = await (await fetch(`${pushgatewayUrl}/api/v1/metrics`)).json();
    const group = data.find((entry) => entry.labels?.job === "bench-batch-0");
    let series = 0;
    for (const [name, family] of Object.entries(group ?? {})) {
      if (name.startsWith("bench_batch_")) series += family.metrics?.length ?? 0;
    }
    if (series === BATCH_SERIES || Date.now() > deadline) return series;
    await sleep(50);
  }
}

/**
 * Measures two targets under the same load in the order A B B A, each run half the usual duration
 * (after one warm-up each), so drift on the shared cores (neighbours, the Pushgateway's heap)
 * falls on both alike. Returns each target's two samples.
 */
async function abba(loads) {
  for (const load of loads) await warmUp(load);
  const seconds = Math.max(1, Math.round(DURATION / 2));
  const samples = loads.map(() => []);
  for (const index of [0, 1, 1, 0]) samples[index].push(await sample({ ...loads[index], seconds }));
  return samples;
}

async function benchValidation() {
  log("validation cost: starting pushgateway (check off), pushguard with and without validation");
  const pushgateway = await startPushgateway("off");
  await prefill(pushgateway.url);
  await pushBatch(pushgateway.url, "");
  const bodyFile = join(work, "push-1000.txt");
  writeFileSync(bodyFile, BATCH_BODY);
  const variants = [];
  for (const enabled of [true, false]) {
    const pushguard = await startPushguard(`pushguard-validation-${enabled}`, (api, metrics) =>
      benchConfig(pushgateway.url, api, metrics, { validation: enabled }),
    );
    // The first group is deleted first, so what is counted afterwards came through this pushguard.
    await fetch(`${pushgateway.url}/metrics/job/bench-batch-0/instance/i0`, { method: "DELETE" });
    const statuses = await pushBatch(pushguard.url, `Bearer ${TOKEN}`);
    const stored = await storedBatchSeries(pushgateway.url);
    if (stored !== BATCH_SERIES)
      throw new Error(`1,000-series push: ${stored} series stored, not ${BATCH_SERIES}`);
    batchAccepted[enabled ? "on" : "off"] = { statuses, stored_series: stored };
    variants.push({ target: `pushguard (validation ${enabled ? "on" : "off"})`, pushguard });
  }
  const workloads = [
    { kind: "push" },
    {
      kind: "push-1000",
      script: LUA_1000,
      env: { BENCH_BODY_FILE: bodyFile, BENCH_GROUPS: String(BATCH_GROUPS) },
    },
  ];
  for (const { kind, ...workload } of workloads) {
    for (const connections of [1, 32]) {
      const loads = variants.map(({ pushguard }) => ({
        url: pushguard.url,
        auth: `Bearer ${TOKEN}`,
        connections,
        proxyPid: pushguard.proc.pid,
        upstreamPid: pushgateway.proc.pid,
        ...workload,
      }));
      const samples = await abba(loads);
      variants.forEach(({ target }, index) => {
        record({ mode: "off", target, kind, connections }, samples[index]);
      });
    }
  }
  for (const { pushguard } of variants) await pushguard.proc.stop();
  if (options.profile) {
    // off-push (above) is the small mix with validation; these give what to compare it with.
    const { script, env } = workloads[1];
    const auth = `Bearer ${TOKEN}`;
    await profileRun("off-push-unvalidated", pushgateway, auth, { validation: false });
    await profileRun("off-push-1000", pushgateway, auth, { script, env });
    await profileRun("off-push-1000-unvalidated", pushgateway, auth, { script, env, validation: false });
  }
  await pushgateway.proc.stop();
}

// ---------------------------------------------------------------------------------------------
// Report

function find(mode, target, connections, kind = "push") {
  return results.find(
    (r) => r.mode === mode && r.target === target && r.connections === connections && r.kind === kind,
  );
}

const MODE_LABELS = { off: "check off", default: "default", "safe-fast": "check off, store index" };
const KIND_LABELS = { push: "", 401: " (bad credential → 401)", "push-1000": ", 1,000-series push" };

const round = (value, digits = 2) => (Number.isFinite(value) ? Number(value.toFixed(digits)) : null);

function report() {
  const ratio = (a, b) => (a && b ? round(a.rps / b.rps, 3) : null);
  const pg = (mode, c) => find(mode, "pushguard", c);
  const validated = (kind, c) => find("off", "pushguard (validation on)", c, kind);
  const unvalidated = (kind, c) => find("off", "pushguard (validation off)", c, kind);
  const addedByValidation = (kind, c, field) =>
    round(validated(kind, c)?.[field] - unvalidated(kind, c)?.[field], field === "p50_ms" ? 3 : 0);
  const reject = find("off", "pushguard", 32, "401");
  const ratios = {
    pushguard_vs_nginx_basic: ratio(pg("off", 32), find("off", "nginx-basic", 32)),
    pushguard_vs_nginx_basic_c1: ratio(pg("off", 1), find("off", "nginx-basic", 1)),
    pushguard_vs_nginx_plain: ratio(pg("off", 32), find("off", "nginx", 32)),
    pushguard_vs_direct_default: ratio(pg("default", 32), find("default", "direct", 32)),
    pushguard_vs_direct_off: ratio(pg("off", 32), find("off", "direct", 32)),
    safe_fast_vs_direct_default: ratio(pg("safe-fast", 32), find("default", "direct", 32)),
    safe_fast_vs_direct_default_c1: ratio(pg("safe-fast", 1), find("default", "direct", 1)),
    safe_fast_vs_direct_off: ratio(pg("safe-fast", 32), find("off", "direct", 32)),
    safe_fast_vs_pushguard_off: ratio(pg("safe-fast", 32), pg("off", 32)),
    reject401_vs_push: ratio(reject, pg("off", 32)),
    nginx_basic_reject401_vs_push: ratio(
      find("off", "nginx-basic", 32, "401"),
      find("off", "nginx-basic", 32),
    ),
    validation_small_vs_unvalidated: ratio(validated("push", 32), unvalidated("push", 32)),
    validation_small_vs_unvalidated_c1: ratio(validated("push", 1), unvalidated("push", 1)),
    validation_1000_vs_unvalidated: ratio(validated("push-1000", 32), unvalidated("push-1000", 32)),
    validation_1000_vs_unvalidated_c1: ratio(validated("push-1000", 1), unvalidated("push-1000", 1)),
  };
  const added = (mode) => round(pg(mode, 1)?.p50_ms - find(mode, "direct", 1)?.p50_ms, 3);
  const repeated = (target) => latencyRepeats.find((r) => r.target === target)?.p50_ms;
  const addedRepeat = round(repeated("pushguard") - repeated("direct"), 3);
  const latency = {
    added_p50_ms: addedRepeat === null ? added("off") : round((added("off") + addedRepeat) / 2, 3),
    added_p50_ms_samples: [added("off"), addedRepeat],
    added_p50_ms_default: added("default"),
    added_p99_ms: round(pg("off", 1)?.p99_ms - find("off", "direct", 1)?.p99_ms, 3),
    nginx_basic_added_p50_ms: round(
      find("off", "nginx-basic", 1)?.p50_ms - find("off", "direct", 1)?.p50_ms,
      3,
    ),
    validation_small_added_p50_ms: addedByValidation("push", 1, "p50_ms"),
    validation_small_added_p50_ms_c32: addedByValidation("push", 32, "p50_ms"),
    validation_1000_added_p50_ms: addedByValidation("push-1000", 1, "p50_ms"),
    validation_1000_added_p50_ms_c32: addedByValidation("push-1000", 32, "p50_ms"),
  };
  const validationReport = {
    accepted_1000: batchAccepted,
    body_1000_bytes: Buffer.byteLength(BATCH_BODY),
    body_1000_series: BATCH_SERIES,
    added_cpu_us_per_req_small: addedByValidation("push", 32, "proxy_cpu_us_per_req"),
    added_cpu_us_per_req_1000: addedByValidation("push-1000", 32, "proxy_cpu_us_per_req"),
  };
  const mib = (value) => round(value, 1);
  const memoryReport = {
    after_load_mib: mib(rss.off_after_load?.rssMiB),
    after_load_heap_used_mib: mib(rss.off_after_load?.heapUsedMiB),
    after_load_heap_total_mib: mib(rss.off_after_load?.heapTotalMiB),
    after_load_default_mib: mib(rss.default_after_load?.rssMiB),
    idle_mib: mib(rss.off_idle?.rssMiB),
    index_bytes_per_series: indexMemoryResult?.index_bytes_per_series ?? null,
    index: indexMemoryResult,
    soak: rss.soak && {
      identities: rss.soak.identities,
      requests: rss.soak.requests,
      rps: round(rss.soak.rps, 0),
      non2xx: rss.soak.non2xx,
      groups_stored: rss.soak.groups_stored,
      startup_ms: rss.soak.startup_ms,
      idle_mib: mib(rss.soak.idle.rssMiB),
      after_mib: mib(rss.soak.after.rssMiB),
      peak_mib: mib(rss.soak.after.peakMiB),
      heap_used_mib: mib(rss.soak.after.heapUsedMiB),
      heap_total_mib: mib(rss.soak.after.heapTotalMiB),
      external_mib: mib(rss.soak.after.externalMiB),
    },
  };
  const target = (value, goal, better) => ({
    value,
    target: goal,
    met: value === null || value === undefined ? null : better === "higher" ? value >= goal : value <= goal,
  });
  const targets = {
    pushguard_vs_nginx_basic: target(ratios.pushguard_vs_nginx_basic, 1.0, "higher"),
    pushguard_vs_direct_default: target(ratios.pushguard_vs_direct_default, 0.95, "higher"),
    added_p50_ms: target(latency.added_p50_ms, 0.5, "lower"),
    reject401_vs_push: target(ratios.reject401_vs_push, 2.0, "higher"),
    soak_rss_mib: target(memoryReport.soak?.after_mib ?? null, 100, "lower"),
    validation_small_vs_unvalidated: target(ratios.validation_small_vs_unvalidated, 0.85, "higher"),
    safe_fast_vs_direct_default: target(ratios.safe_fast_vs_direct_default, 20, "higher"),
    index_bytes_per_series: target(memoryReport.index_bytes_per_series, 200, "lower"),
  };

  const rows = results.map(
    (r) =>
      `| ${MODE_LABELS[r.mode]} | ${r.target}${KIND_LABELS[r.kind]} | ${r.connections} | ${r.rps.toFixed(0)} | ${r.p50_ms.toFixed(2)} | ${r.p99_ms.toFixed(2)} | ${r.proxy_cpu_us_per_req === null ? "—" : `${r.proxy_cpu_us_per_req} (${r.proxy_cpu_sys_pct}%)`} | ${r.upstream_cpu_us_per_req} | ${r.non2xx}${r.socket_errors ? ` (+${r.socket_errors} socket)` : ""} |`,
  );
  const table = [
    "| pushgateway mode | target | conns | req/s | p50 ms | p99 ms | proxy CPU µs/req (kernel %) | pushgateway CPU µs/req | non-2xx |",
    "| --- | --- | --: | --: | --: | --: | --: | --: | --: |",
    ...rows,
  ].join("\n");
  const fmt = (entry) =>
    `${entry.value ?? "n/a"} (target ${entry.target}${entry.met === null ? "" : entry.met ? ", met" : ", NOT met"})`;
  const summary = [
    "",
    table,
    "",
    `pushguard / nginx+auth_basic throughput (check off, c=32): ${fmt(targets.pushguard_vs_nginx_basic)}`,
    `pushguard / direct throughput (default mode, c=32):        ${fmt(targets.pushguard_vs_direct_default)}`,
    `pushguard / direct throughput (check off, c=32):           ${ratios.pushguard_vs_direct_off}`,
    `safe fast mode / direct default mode throughput (c=32):    ${fmt(targets.safe_fast_vs_direct_default)}, c=1 ${ratios.safe_fast_vs_direct_default_c1}`,
    `safe fast mode / pushguard check off throughput (c=32):    ${ratios.safe_fast_vs_pushguard_off}`,
    `store index heap, bytes per stored series (1M series):     ${fmt(targets.index_bytes_per_series)}`,
    `added p50 latency, ms (check off, c=1):                    ${fmt(targets.added_p50_ms)}`,
    `added p50 latency, ms (default mode, c=1):                 ${latency.added_p50_ms_default}`,
    `401 rejections / pushes throughput (c=32):                 ${fmt(targets.reject401_vs_push)}`,
    `pushguard RSS after load, MiB:                             ${memoryReport.after_load_mib} (idle ${memoryReport.idle_mib}, heap used ${memoryReport.after_load_heap_used_mib})`,
    `validated / unvalidated throughput, small pushes (c=32):   ${fmt(targets.validation_small_vs_unvalidated)}, c=1 ${ratios.validation_small_vs_unvalidated_c1}`,
    `added p50 latency by validation, small pushes, ms (c=1):  ${latency.validation_small_added_p50_ms} (c=32 ${latency.validation_small_added_p50_ms_c32}), CPU ${validationReport.added_cpu_us_per_req_small} µs/push`,
    `validated / unvalidated throughput, 1,000 series (c=32):   ${ratios.validation_1000_vs_unvalidated}, c=1 ${ratios.validation_1000_vs_unvalidated_c1}`,
    `added p50 latency by validation, 1,000 series, ms (c=1):  ${latency.validation_1000_added_p50_ms} (c=32 ${latency.validation_1000_added_p50_ms_c32}), CPU ${validationReport.added_cpu_us_per_req_1000} µs/push`,
    memoryReport.soak
      ? `RSS after ${memoryReport.soak.identities} identities/jobs soak, MiB:          ${fmt(targets.soak_rss_mib)}, peak ${memoryReport.soak.peak_mib}, ${memoryReport.soak.rps} pushes/s, ${memoryReport.soak.groups_stored} groups stored`
      : "",
  ].join("\n");
  process.stdout.write(`${summary}\n`);
  for (const [name, profile] of Object.entries(profiles)) {
    process.stdout.write(
      `\nCPU profile ${name} (${profile.rps_while_profiled} req/s; ${profile.file}), top self time:\n${profile.functions
        .slice(0, 15)
        .map((f) => `  ${f.pct.toFixed(1).padStart(5)}%  ${f.name}`)
        .join("\n")}\n`,
    );
  }
  return { ratios, latency, validation: validationReport, memory: memoryReport, targets, table };
}

async function main() {
  const started = Date.now();
  const versions = {
    node: process.version,
    pushgateway: (await run(BIN.pushgateway, ["--version"])).stderr.split("\n")[0] || undefined,
    nginx: (await run(BIN.nginx, ["-v"])).stderr.trim(),
    wrk: (await run(BIN.wrk, ["-v"])).stdout.split("\n")[0]?.trim(),
  };
  for (const mode of MODES) await benchMode(mode);
  await benchSafeFast();
  await benchValidation();
  await soak();
  indexMemoryResult = await indexMemory();
  const { ratios, latency, validation: validationReport, memory: memoryReport, targets, table } = report();
  const invalid = results.filter((r) => r.kind !== "401" && (r.non2xx > 0 || r.socket_errors > 0));
  const output = {
    date: new Date().toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      memory_gib: round(totalmem() / 2 ** 30, 1),
      ...versions,
    },
    settings: {
      duration_s: DURATION,
      warmup_s: WARMUP,
      soak_s: SOAK,
      groups: GROUPS,
      wrk_threads: 1,
      teams: FILLER_TEAMS + 1,
      rate_limiting: rateLimitSupported(),
      request: "PUT /metrics/job/bench-<i>/instance/i<i>, 2 gauge families (~150 bytes of text)",
      request_1000: `PUT /metrics/job/bench-batch-<i>/instance/i<i> (${BATCH_GROUPS} groups), ${BATCH_SERIES} gauge series in 10 families (${Buffer.byteLength(BATCH_BODY)} bytes of text)`,
    },
    ratios,
    latency,
    validation: validationReport,
    safe_fast: safeFast,
    memory: memoryReport,
    targets,
    results,
    profiles,
    table,
    elapsed_s: round((Date.now() - started) / 1000, 1),
  };
  if (options.out) {
    writeFileSync(options.out, `${JSON.stringify(output, null, 2)}\n`);
    log(`wrote ${options.out}`);
  }
  log(`done in ${output.elapsed_s} s`);
  if (invalid.length > 0) {
    log(`error: ${invalid.length} push runs had failed requests; the numbers are not comparable`);
    process.exitCode = 1;
  }
}

try {
  await main();
} finally {
  await cleanup();
}
