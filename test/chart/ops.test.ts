import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO } from "./helm.js";

const MAKEFILE = join(REPO, "make/ops/pushgateway.mk");

/** `make -n`: what a target would run against release `batch` in namespace `metrics`. */
function dryRun(target: string, variables: Record<string, string> = {}) {
  const assignments = Object.entries({ RELEASE: "batch", NAMESPACE: "metrics", ...variables }).map(
    ([k, v]) => `${k}=${v}`,
  );
  const result = spawnSync("make", ["--no-print-directory", "-n", "-f", MAKEFILE, target, ...assignments], {
    encoding: "utf8",
    cwd: REPO,
  });
  return { status: result.status, commands: result.stdout, error: result.stderr };
}

/** Every target the file defines, so a new one cannot go untested. */
const TARGETS = [...readFileSync(MAKEFILE, "utf8").matchAll(/^([a-z][a-z-]+):/gm)].map(
  (match) => match[1] as string,
);

const EXPECTED: Record<string, { variables?: Record<string, string>; commands: RegExp[] }> = {
  "pushgateway-port-forward": {
    commands: [/kubectl -n metrics port-forward svc\/batch-pushguard 19091:9091 19092:9092/],
  },
  "pushgateway-metrics": {
    variables: { IDENTITY: "platform-admin" },
    commands: [
      /kubectl -n metrics get secret batch-pushguard-tokens -o jsonpath='\{\.data\.platform-admin\}' \| base64 -d/,
      /kubectl -n metrics port-forward svc\/batch-pushguard 19091:9091 19092:9092 >\/dev\/null &/,
      /auth \| curl -fsS -H @- http:\/\/127\.0\.0\.1:19091\/metrics/,
    ],
  },
  "pushgateway-delete-group": {
    variables: {
      JOB: "batch_job",
      LABELS: "instance/worker01",
      IDENTITY: "team-a-ci",
      SECRET: "pushguard-tokens",
    },
    commands: [
      /get secret pushguard-tokens -o jsonpath='\{\.data\.team-a-ci\}'/,
      /curl -fsS -X DELETE -H @- .* http:\/\/127\.0\.0\.1:19091\/metrics\/job\/batch_job\/instance\/worker01/,
      /trap 'kill \$PF/,
    ],
  },
  "pushgateway-health": {
    commands: [
      /kubectl -n metrics get pods -l app\.kubernetes\.io\/instance=batch/,
      /127\.0\.0\.1:19092\/readyz/,
    ],
  },
  "pushgateway-logs": {
    commands: [
      /kubectl -n metrics logs -l app.kubernetes.io\/instance=batch,app.kubernetes.io\/component=pushgateway -c pushgateway --prefix --tail=200/,
    ],
  },
  "pushguard-logs": {
    commands: [
      /kubectl -n metrics logs -l app\.kubernetes\.io\/instance=batch,app\.kubernetes\.io\/component=pushguard -c pushguard --prefix/,
    ],
  },
  "pushgateway-restart": {
    commands: [
      /kubectl -n metrics rollout restart statefulset\/batch-pushguard-pushgateway/,
      /kubectl -n metrics rollout status statefulset\/batch-pushguard-pushgateway/,
    ],
  },
  "pushguard-restart": {
    commands: [
      /kubectl -n metrics rollout restart deployment\/batch-pushguard/,
      /rollout status deployment\/batch-pushguard/,
    ],
  },
  "pushguard-hash-token": {
    commands: [
      /kubectl -n metrics exec -i deploy\/batch-pushguard -c pushguard -- node \/app\/dist\/main\.js hash-token/,
    ],
  },
  "pushguard-explain": {
    variables: { IDENTITY: "team-a-ci", JOB: "team-a-nightly", METHOD: "DELETE" },
    commands: [
      /get secret batch-pushguard-tokens -o jsonpath='\{\.data\.team-a-ci\}' \| base64 -d \|/,
      /node \/app\/dist\/main\.js explain --config \/etc\/pushguard\/config\/config\.yaml --method DELETE --path \/metrics\/job\/team-a-nightly/,
    ],
  },
};

describe("make/ops/pushgateway.mk (make -n)", () => {
  it("has a test for every target", () => {
    expect([...TARGETS].sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED))("%s", (target, { variables, commands }) => {
    const run = dryRun(target, variables);
    expect(run.error).toBe("");
    expect(run.status).toBe(0);
    for (const command of commands) expect(run.commands).toMatch(command);
    // Nothing runs inside the pushgateway image (it has no usable wget), and no token is echoed.
    expect(run.commands).not.toMatch(/wget|exec .*pushgateway/);
    expect(run.commands).not.toMatch(/Bearer [A-Za-z0-9]/);
  });

  it("derives object names from the release name as the chart does", () => {
    expect(dryRun("pushgateway-restart", { RELEASE: "pushguard" }).commands).toMatch(
      /statefulset\/pushguard-pushgateway$/m,
    );
    expect(dryRun("pushgateway-restart", { RELEASE: "my-pushguard-prod" }).commands).toMatch(
      /statefulset\/my-pushguard-prod-pushgateway$/m,
    );
    expect(dryRun("pushgateway-restart", { FULLNAME: "pg" }).commands).toMatch(
      /statefulset\/pg-pushgateway$/m,
    );
  });

  it.each([
    ["pushgateway-delete-group", { IDENTITY: "x" }, /JOB is required/],
    ["pushgateway-delete-group", { JOB: "x" }, /IDENTITY is required/],
    ["pushguard-explain", { IDENTITY: "x" }, /set JOB=<job> or REQUEST_PATH/],
    ["pushguard-explain", { JOB: "x" }, /IDENTITY is required/],
  ])("%s refuses to run without what it needs (%o)", (target, variables, message) => {
    const run = dryRun(target, variables);
    expect(run.status).not.toBe(0);
    expect(run.error).toMatch(message);
  });
});
