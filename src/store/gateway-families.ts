import { randomUUID } from "node:crypto";
import { type MetricType, metricTypeNamed } from "../exposition/types.js";
import type { Logger } from "../observability/logger.js";
import type { Gateway } from "../upstream/gateway.js";
import type { StoredFamilies } from "../validation/consistency.js";

/** `/metrics` bodies past this are not scanned (a store that large is issue 12's index's job). */
const MAX_SCAN_BYTES = 64 * 1024 * 1024;
const REFRESH_TIMEOUT_MS = 2_000;
const TYPE_LINE = /^# TYPE (\S+) (\S+)$/;

/**
 * The families a Pushgateway exposes itself (`go_*`, `process_*`, `pushgateway_*`, ...), with
 * their types, found in its `/metrics` text: every pushed series carries a `job` label (the
 * Pushgateway adds it), its own never do. Pure, so it is tested on real expositions.
 */
export function ownFamilies(exposition: string): Map<string, MetricType> {
  const own = new Map<string, MetricType>();
  let name: string | undefined;
  let type: MetricType | undefined;
  let pushed = false;
  let sampled = false;
  const close = () => {
    if (name !== undefined && type !== undefined && sampled && !pushed) own.set(name, type);
  };
  for (const line of exposition.split("\n")) {
    if (line.startsWith("#")) {
      const match = TYPE_LINE.exec(line);
      if (!match) continue;
      close();
      name = match[1];
      type = metricTypeNamed((match[2] as string).toUpperCase());
      pushed = false;
      sampled = false;
    } else if (line !== "") {
      sampled = true;
      const labels = line.indexOf("{");
      if (labels !== -1 && /[{,]job="/.test(line.slice(labels))) pushed = true;
    }
  }
  close();
  return own;
}

/**
 * What the Pushgateway holds that no push can change: its own families, learnt from its
 * `/metrics` at start and every `refreshMs` after. A pushed family of the same name but another
 * type makes every `/metrics` answer 500 once the consistency check is off (and is refused with
 * it on), so validation checks pushes against these.
 */
export class GatewayFamilies implements StoredFamilies {
  readonly #gateway: Gateway;
  readonly #logger: Logger;
  readonly #refreshMs: number;
  #types = new Map<string, MetricType>();
  #timer: NodeJS.Timeout | undefined;

  constructor(gateway: Gateway, logger: Logger, refreshMs = 600_000) {
    this.#gateway = gateway;
    this.#logger = logger;
    this.#refreshMs = refreshMs;
  }

  /** Learns the families now; on failure keeps what it knew and tries again within 5 s. */
  async refresh(): Promise<boolean> {
    try {
      const response = await this.#gateway.request({
        method: "GET",
        path: "/metrics",
        headers: { accept: "text/plain; version=0.0.4" },
        clientAddress: undefined,
        requestId: `gateway-families-${randomUUID()}`,
        // At start this delays listening: a hung Pushgateway must not hold it for the full timeout.
        signal: AbortSignal.timeout(REFRESH_TIMEOUT_MS),
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of response.body) {
        size += chunk.length;
        if (size > MAX_SCAN_BYTES) throw new Error(`/metrics is larger than ${MAX_SCAN_BYTES} bytes`);
        chunks.push(chunk);
      }
      if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
      this.#types = ownFamilies(Buffer.concat(chunks).toString("utf8"));
      return true;
    } catch (error) {
      this.#logger.warn(
        { err: error },
        "could not learn the Pushgateway's own metric families; pushes are not checked against them until it works",
      );
      return false;
    }
  }

  /** Refreshes every `refreshMs`, or within 5 s while the last refresh failed. */
  start(lastRefreshed: boolean): void {
    const schedule = (ok: boolean) => {
      this.#timer = setTimeout(() => void this.refresh().then(schedule), ok ? this.#refreshMs : 5_000);
      this.#timer.unref();
    };
    schedule(lastRefreshed);
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  holder(name: string): { type: MetricType; holder: string } | undefined {
    const type = this.#types.get(name);
    return type === undefined ? undefined : { type, holder: "the Pushgateway's own metrics" };
  }
}
