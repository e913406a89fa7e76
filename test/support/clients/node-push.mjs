// A batch job pushing with Node's prom-client `Pushgateway`, used by the end-to-end tests.
//
//   PUSHGUARD_TOKEN=... node node-push.mjs --url http://127.0.0.1:PORT --job team-a-backup \
//       --op pushAdd --grouping instance=db1 --value 42
//
// The token goes in `Authorization: Bearer <token>`, as in the README; without PUSHGUARD_TOKEN no
// credential is sent. Exit 0 on success; 1 with prom-client's error message on stderr.
import { parseArgs } from "node:util";
import { Gauge, Pushgateway, Registry } from "prom-client";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    job: { type: "string" },
    op: { type: "string", default: "push" },
    grouping: { type: "string", multiple: true, default: [] },
    metric: { type: "string", default: "backup_last_success_seconds" },
    value: { type: "string", default: "1" },
  },
});

const registry = new Registry();
new Gauge({ name: values.metric, help: "Pushed by the Node end-to-end client.", registers: [registry] }).set(
  Number(values.value),
);
const token = process.env.PUSHGUARD_TOKEN;
const gateway = new Pushgateway(
  values.url,
  token ? { headers: { Authorization: `Bearer ${token}` } } : {},
  registry,
);
const groupings = Object.fromEntries(values.grouping.map((pair) => pair.split(/=(.*)/s).slice(0, 2)));
const operations = {
  push: () => gateway.push({ jobName: values.job, groupings }),
  pushAdd: () => gateway.pushAdd({ jobName: values.job, groupings }),
  delete: () => gateway.delete({ jobName: values.job, groupings }),
};
const operation = operations[values.op];
if (!operation) {
  process.stderr.write(`unknown --op ${values.op}\n`);
  process.exit(2);
}
try {
  await operation();
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
