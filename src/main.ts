#!/usr/bin/env -S node --max-semi-space-size=4
// The flag above (also in the Dockerfile and `npm start`) caps V8's young generation at 4 MiB per
// semi-space: ~25 MiB less resident memory for ~3% of throughput (see docs/performance.md).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import { explain } from "./cli/explain.js";
import { readStoreSnapshot } from "./cli/store-snapshot.js";
import { summarizeConfig } from "./cli/summary.js";
import { ConfigError, hashToken, loadConfigFile, resolveConfigPath } from "./config/load.js";
import { watchConfig } from "./config/watch.js";
import { createLogger } from "./observability/logger.js";
import { startServer } from "./server.js";
import { VERSION } from "./version.js";

const USAGE = `pushguard ${VERSION} — an authenticating gateway for the Prometheus Pushgateway

Usage:
  pushguard serve --config FILE      run the gateway (or set PUSHGUARD_CONFIG)
  pushguard check --config FILE      validate a config and print what it grants (exit 0 valid, 1 invalid)
  pushguard hash-token               read a token on stdin, print its sha256 for the config
  pushguard explain --config FILE --method M --path P [--token-file F | --anonymous]
                    [--body FILE [--content-type T]] [--store]
                                     show identity, matching rule, push limits, decision and upstream
                                     path for one request, and validate a push body if given; with
                                     --store, read the Pushgateway's store and say whether the push
                                     fits the team's quota and clashes with no stored family; the
                                     token is read from F, or stdin (exit 0 allow, 2 deny)
  pushguard --version | --help
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      method: { type: "string", short: "X" },
      path: { type: "string" },
      "token-file": { type: "string" },
      anonymous: { type: "boolean" },
      body: { type: "string" },
      "content-type": { type: "string" },
      store: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
    },
  });
  const command = positionals[0];
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 1 : 0;
  }
  switch (command) {
    case "serve":
      return serveCommand(values.config);
    case "check":
      return checkCommand(values.config);
    case "explain":
      return explainCommand(values);
    case "hash-token":
      return hashTokenCommand();
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 1;
  }
}

/** How long past the grace period shutdown may take to close the listeners and the upstream pool. */
const FORCED_EXIT_MARGIN_MS = 1_000;

async function serveCommand(configFlag: string | undefined): Promise<number> {
  const path = resolveConfigPath(configFlag, process.env);
  const config = loadConfigFile(path);
  const logger = createLogger(config.log.level);
  const server = await startServer(config, { logger });
  const watcher = watchConfig({
    path,
    env: process.env,
    initial: config,
    logger,
    metrics: server.metrics,
    apply: (next) => server.reload(next),
  });
  const onHangup = () => watcher.reload("SIGHUP");
  process.on("SIGHUP", onHangup);
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      watcher.close();
      process.off("SIGHUP", onHangup);
      logger.info(
        { signal, graceMs: config.server.shutdownGraceMs },
        "shutting down: draining in-flight requests",
      );
      // After the grace period client connections are cut, but a request still waiting on a hung
      // Pushgateway keeps the upstream pool (and so the process) alive until the upstream
      // timeout. The grace period is the bound operators configured, so hold to it.
      const deadline = setTimeout(() => {
        logger.warn(
          { graceMs: config.server.shutdownGraceMs },
          "grace period over with upstream requests still open: exiting",
        );
        process.exit();
      }, config.server.shutdownGraceMs + FORCED_EXIT_MARGIN_MS);
      deadline.unref();
      server.close().then(
        () => {
          clearTimeout(deadline);
          logger.info("stopped");
          resolve(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, "error while stopping");
          process.exitCode = 1;
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}

function checkCommand(configFlag: string | undefined): number {
  const config = loadConfigFile(resolveConfigPath(configFlag, process.env));
  process.stdout.write(summarizeConfig(config));
  return 0;
}

async function explainCommand(values: {
  config?: string;
  method?: string;
  path?: string;
  "token-file"?: string;
  anonymous?: boolean;
  body?: string;
  "content-type"?: string;
  store?: boolean;
}): Promise<number> {
  if (!values.method || !values.path) {
    process.stderr.write(
      "explain: --method and --path are required, e.g. --method PUT --path /metrics/job/x\n",
    );
    return 1;
  }
  const config = loadConfigFile(resolveConfigPath(values.config, process.env));
  let token: string | undefined;
  if (!values.anonymous) {
    token = (values["token-file"] ? readFileSync(values["token-file"], "utf8") : await readStdin()).trim();
    if (token === "") {
      process.stderr.write(
        "explain: no token (give --token-file FILE, pipe it on stdin, or pass --anonymous)\n",
      );
      return 1;
    }
  }
  const body =
    values.body === undefined ? undefined : readBodyFile(values.body, config.body.maxDecompressedBytes);
  const result = await explain(config, {
    method: values.method,
    path: values.path,
    token,
    body,
    contentType: values["content-type"],
    store: values.store ? await readStoreSnapshot(config) : undefined,
  });
  process.stdout.write(result.text);
  return result.allowed ? 0 : 2;
}

/** A body file as a client would send it; a gzip file is decoded, as the server decodes gzip bodies. */
function readBodyFile(path: string, maxDecompressedBytes: number): Buffer {
  const bytes = readFileSync(path);
  const gzip = bytes[0] === 0x1f && bytes[1] === 0x8b;
  return gzip ? gunzipSync(bytes, { maxOutputLength: maxDecompressedBytes }) : bytes;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function hashTokenCommand(): Promise<number> {
  const token = (await readStdin()).replace(/[\r\n]+$/, "");
  if (token === "") {
    process.stderr.write('hash-token: no token on stdin (try: printf %s "$TOKEN" | pushguard hash-token)\n');
    return 1;
  }
  if (token.length < 16)
    process.stderr.write("hash-token: warning: tokens shorter than 16 characters are guessable\n");
  process.stdout.write(`${hashToken(token).toString("hex")}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message =
      error instanceof ConfigError ? error.message : ((error as Error).message ?? String(error));
    // Exit explicitly: a server that failed half-way (one listener bound, the other refused)
    // would otherwise keep the process alive with nothing serving.
    process.stderr.write(`pushguard: ${message}\n`, () => process.exit(1));
  },
);
