import { send } from "./http.js";

const BARRIER_PATH = "/metrics/job/pushguard_test_write_barrier";

/**
 * Returns once every write sent to the Pushgateway before the call has been applied.
 *
 * Pushgateway answers DELETE with 202 and applies it later, so "the group is still there right
 * after a refused DELETE" proves nothing. Its store applies writes one at a time from a single
 * queue, and a PUT is only answered once applied: so when the barrier PUT is answered, any DELETE
 * queued before it has taken effect. The barrier group is deleted again and awaited the same way
 * (it disappears only after its own DELETE, queued after everything else, is applied).
 */
export async function afterPendingWrites(pushgatewayUrl: string, timeoutMs = 3000): Promise<void> {
  const put = await send(pushgatewayUrl, "PUT", BARRIER_PATH, { body: "write_barrier 1\n" });
  if (put.status !== 200) throw new Error(`write barrier PUT answered ${put.status}: ${put.text}`);
  await send(pushgatewayUrl, "DELETE", BARRIER_PATH);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const response = await fetch(`${pushgatewayUrl}/api/v1/metrics`);
    const body = (await response.json()) as { data: Array<{ labels: Record<string, string> }> };
    if (!body.data.some((group) => group.labels.job === "pushguard_test_write_barrier")) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`the write barrier group was not deleted within ${timeoutMs} ms`);
}
