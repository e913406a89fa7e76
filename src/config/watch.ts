import { createHash } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { type Config, ConfigError, loadConfigFile } from "./load.js";

export interface ConfigWatcherOptions {
  readonly path: string;
  readonly env: NodeJS.ProcessEnv;
  readonly initial: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Receives each new valid config; the old one keeps serving until it returns. */
  readonly apply: (config: Config) => void;
  /** Quiet period after a file event before reloading (editors and kubelet write in bursts). */
  readonly debounceMs?: number;
}

export interface ConfigWatcher {
  /** Reloads now (SIGHUP). */
  reload(reason: string): void;
  close(): void;
}

/**
 * Live reload: SIGHUP, or a change to the config file or any secret file it references. Kubernetes
 * updates mounted ConfigMaps and Secrets by swapping a `..data` symlink, so directories are
 * watched, not files. A broken config is logged and counted, and the old one keeps serving.
 */
export function watchConfig(options: ConfigWatcherOptions): ConfigWatcher {
  const { logger, metrics } = options;
  let fingerprint = fingerprintOf(options.initial);
  let watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;

  const watchFilesOf = (config: Config) => {
    for (const watcher of watchers) watcher.close();
    const files = [
      options.path,
      ...config.identities.static.flatMap((identity) => (identity.file ? [identity.file] : [])),
    ];
    const byDirectory = new Map<string, Set<string>>();
    for (const file of files.map((path) => resolve(path))) {
      const names = byDirectory.get(dirname(file)) ?? new Set<string>(["..data"]);
      names.add(basename(file));
      byDirectory.set(dirname(file), names);
    }
    watchers = [...byDirectory].flatMap(([directory, names]) => {
      try {
        const watcher = watch(directory, (_event, name) => {
          if (name === null || names.has(name.toString())) schedule(`${directory}/${name ?? ""} changed`);
        });
        watcher.on("error", (error) => logger.warn({ err: error, directory }, "config watch failed"));
        return [watcher];
      } catch (error) {
        logger.warn({ err: error, directory }, "cannot watch directory; use SIGHUP to reload");
        return [];
      }
    });
  };

  const reload = (reason: string) => {
    let next: Config;
    let nextFingerprint: string;
    try {
      next = loadConfigFile(options.path, options.env);
      nextFingerprint = fingerprintOf(next);
      if (nextFingerprint === fingerprint) {
        logger.debug({ reason }, "config unchanged");
        return;
      }
      options.apply(next);
    } catch (error) {
      // Building the new stages can fail too (an unreadable CA file, say): same outcome as an
      // invalid file, never a crash.
      metrics.configReloads.inc({ result: "failure" });
      metrics.configLastReloadSuccessful.set(0);
      const issues = error instanceof ConfigError ? error.issues : [{ path: "", message: String(error) }];
      logger.error({ reason, issues }, "config reload rejected: the previous config keeps serving");
      return;
    }
    fingerprint = nextFingerprint;
    metrics.configReloads.inc({ result: "success" });
    metrics.configLastReloadSuccessful.set(1);
    metrics.configLastReloadTime.set(Date.now() / 1000);
    logger.info({ reason, config: options.path }, "config reloaded");
    watchFilesOf(next);
  };

  const schedule = (reason: string) => {
    clearTimeout(timer);
    timer = setTimeout(() => reload(reason), options.debounceMs ?? 250);
  };

  watchFilesOf(options.initial);
  return {
    reload,
    close() {
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}

function fingerprintOf(config: Config): string {
  const text = JSON.stringify(config, (_key, value: unknown) =>
    Buffer.isBuffer(value) ||
    (value && typeof value === "object" && (value as { type?: string }).type === "Buffer")
      ? Buffer.from(value as Buffer).toString("hex")
      : value,
  );
  return createHash("sha256").update(text).digest("hex");
}
