import { subscribe } from "node:diagnostics_channel";

/**
 * Counts the TCP connections undici opens per origin (`http://host:port`), from undici's own
 * diagnostics channel. A Pushgateway that restarted can only be reached over a new connection
 * (the old ones died with the old process), so "no new connection since the last check" proves a
 * response came from the process that was checked. Counting is process-wide, which only ever
 * causes an extra check.
 */
const connects = new Map<string, number>();
let watching = false;

interface ConnectedMessage {
  readonly connectParams?: { readonly protocol?: string; readonly host?: string };
}

export function watchConnections(): void {
  if (watching) return;
  watching = true;
  subscribe("undici:client:connected", (message) => {
    const params = (message as ConnectedMessage).connectParams;
    if (!params?.protocol || !params.host) return;
    const origin = `${params.protocol}//${params.host}`;
    connects.set(origin, (connects.get(origin) ?? 0) + 1);
  });
}

/** Connections opened to `origin` (as `new URL(url).origin` spells it) since the process started. */
export function connectionCount(origin: string): number {
  return connects.get(origin) ?? 0;
}
