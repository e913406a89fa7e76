import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FULLNAME, find, findAll, HELMS, PROFILE_NAMES, PROFILES, REPO, render } from "./helm.js";

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
    variables: { REPLICA: "2" },
    commands: [
      /kubectl -n metrics port-forward pod\/batch-pushguard-pushgateway-2 19093:9091 >\/dev\/null &/,
      /curl -fsS http:\/\/127\.0\.0\.1:19093\/metrics/,
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
      /SECRET='pushguard-tokens'/,
      /kubectl -n metrics get configmap batch-pushguard -o jsonpath='\{\.data\.config\\\.yaml\}'/,
      /grep -qxF 'sha256File: \/etc\/pushguard\/secrets\/team-a-ci'/,
      /get secret "\$SECRET" -o jsonpath='\{\.data\.team-a-ci\}'/,
      /curl -fsS -X DELETE -H @- .* http:\/\/127\.0\.0\.1:19091\/metrics\/job\/batch_job\/instance\/worker01/,
      /trap 'kill \$PF/,
    ],
  },
  "pushgateway-health": {
    commands: [
      /kubectl -n metrics get pods -l app\.kubernetes\.io\/instance=batch -o wide/,
      /get pods -l app\.kubernetes\.io\/instance=batch,app\.kubernetes\.io\/component=pushgateway -o jsonpath='\{\.items\[\*\]\.metadata\.name\}'/,
      /port-forward pod\/\$pod 19093:9091/,
      /curl -sS http:\/\/127\.0\.0\.1:19093\/-\/healthy/,
      /curl -sS http:\/\/127\.0\.0\.1:19093\/-\/ready/,
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
      /get secret "\$SECRET" -o jsonpath='\{\.data\.team-a-ci\}'/,
      /printf %s "\$TOKEN" \| kubectl -n metrics exec -i deploy\/batch-pushguard -c pushguard -- node/,
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

  it.each([
    "pushguard",
    "my-pushguard-prod",
    "pg",
    "team-metrics-gateway-production-eu1",
    "a-53-character-release-name-of-a-platform-team-prod1",
    "a-53-character-release-name-with-pushguard-in-it-pro",
    "abcdefghij-abcdefghij-abcdefghij-prod",
    "team.metrics.eu1",
    "a.53-character.release-name.with-dots.from-a-platform",
  ])("derives object names from release %s as the chart does", (release) => {
    const objects = render(HELMS[1], [], [], release);
    const deployment = findAll(objects, "Deployment")[0]?.metadata.name;
    const statefulSet = findAll(objects, "StatefulSet")[0]?.metadata.name;
    expect(dryRun("pushguard-restart", { RELEASE: release }).commands).toMatch(
      new RegExp(`rollout restart deployment/${deployment}$`, "m"),
    );
    expect(dryRun("pushgateway-restart", { RELEASE: release }).commands).toMatch(
      new RegExp(`rollout restart statefulset/${statefulSet}$`, "m"),
    );
  });

  it("takes FULLNAME as given (fullnameOverride)", () => {
    expect(dryRun("pushgateway-restart", { FULLNAME: "pg" }).commands).toMatch(
      /statefulset\/pg-pushgateway$/m,
    );
  });

  it.each(PROFILE_NAMES)(
    "profile %s: the targets' names and selectors are those of the rendered objects",
    (profile) => {
      const objects = render(HELMS[1], PROFILES[profile], [], "batch");
      const commands = Object.entries(EXPECTED)
        .map(([target, { variables }]) => dryRun(target, { ...variables, NAMESPACE: "monitoring" }).commands)
        .join("\n");
      const deployment = find(objects, "Deployment", "batch-pushguard");
      const statefulSet = find(objects, "StatefulSet", "batch-pushguard-pushgateway");
      const service = find(objects, "Service", "batch-pushguard");
      expect(commands).toContain(
        `svc/${service.metadata.name} 19091:${service.spec.ports[0].port} 19092:${service.spec.ports[1].port}`,
      );
      expect(commands).toContain(
        `pod/${statefulSet.metadata.name}-2 19093:${statefulSet.spec.template.spec.containers[0].ports[0].containerPort}`,
      );
      expect(commands).toContain(`configmap ${find(objects, "ConfigMap", "batch-pushguard").metadata.name} `);
      // The logs targets select by labels every pod template carries.
      for (const [owner, component] of [
        [deployment, "pushguard"],
        [statefulSet, "pushgateway"],
      ] as const) {
        expect(owner.spec.template.metadata.labels).toMatchObject({
          "app.kubernetes.io/instance": "batch",
          "app.kubernetes.io/component": component,
        });
        expect(owner.spec.template.spec.containers[0].name).toBe(component);
      }
      expect(commands).toMatch(
        /logs -l app\.kubernetes\.io\/instance=batch,app\.kubernetes\.io\/component=pushgateway -c pushgateway/,
      );
    },
  );

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

/**
 * The targets that read a token, run for real against a fake kubectl (and curl, and pushguard CLI)
 * that log what they are asked: a Secret that cannot be read must stop the target before anything
 * is sent, never hand on an empty token.
 */
describe("make/ops/pushgateway.mk with a fake kubectl", () => {
  const bin = mkdtempSync(join(tmpdir(), "pushguard-ops-"));
  afterAll(() => rmSync(bin, { recursive: true, force: true }));
  const log = join(bin, "calls.log");
  const script = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  // kubectl -n <namespace> <verb> ...: the Deployment's tokens volume names $FAKE_SECRET_NAME.
  script(
    "kubectl",
    `echo "kubectl $*" >> "${log}"
shift 2
case "$1 $2" in
  "get deployment") printf %s "$FAKE_SECRET_NAME" ;;
  "get configmap") printf 'identities:\n  static:\n  - name: team-a-ci\n    tokenFile: /etc/pushguard/secrets/team-a-ci\n  - name: platform-admin\n    sha256File: /etc/pushguard/secrets/platform-admin\n' ;;
  "get pods") printf 'batch-pushguard-pushgateway-0 batch-pushguard-pushgateway-1' ;;
  "get secret")
    [ "$FAKE_SECRET" = unreadable ] && { echo 'Error from server (Forbidden): secrets is forbidden' >&2; exit 1; }
    [ "$FAKE_SECRET" = "without key" ] || printf %s "$(printf %s team-a-token-0123 | base64)" ;;
  "port-forward "*) exec sleep 30 ;;
esac`,
  );
  script("curl", `echo "curl $* stdin=$(cat 2>/dev/null | tr '\\n' ' ')" >> "${log}"`);
  script("pushguard", `echo "pushguard $* stdin=$(cat)" >> "${log}"`);

  function run(target: string, variables: Record<string, string>, fake: Record<string, string>) {
    rmSync(log, { force: true });
    const assignments = Object.entries({
      RELEASE: "batch",
      NAMESPACE: "metrics",
      KUBECTL: join(bin, "kubectl"),
      CURL: join(bin, "curl"),
      PUSHGUARD: join(bin, "pushguard"),
      IDENTITY: "team-a-ci",
      JOB: "team-a-nightly",
      ...variables,
    }).map(([k, v]) => `${k}=${v}`);
    const result = spawnSync("make", ["--no-print-directory", "-s", "-f", MAKEFILE, target, ...assignments], {
      encoding: "utf8",
      cwd: REPO,
      timeout: 20_000,
      env: { PATH: process.env.PATH, FAKE_SECRET_NAME: "pushguard-tokens", FAKE_SECRET: "ok", ...fake },
    });
    const calls = existsSync(log) ? readFileSync(log, "utf8") : "";
    return { status: result.status, stderr: result.stderr, calls };
  }

  const TOKEN_TARGETS = ["pushguard-explain", "pushgateway-delete-group"];

  it.each(TOKEN_TARGETS)(
    "%s reads the Secret the Deployment mounts (tokens.existingSecret needs no SECRET)",
    (target) => {
      const { status, stderr, calls } = run(target, {}, {});
      expect(stderr).toBe("");
      expect(status).toBe(0);
      expect(calls).toMatch(
        /kubectl -n metrics get deployment batch-pushguard -o jsonpath=\S+tokens\S+secretName/,
      );
      expect(calls).toContain("kubectl -n metrics get secret pushguard-tokens -o jsonpath={.data.team-a-ci}");
      // The token reaches pushguard or curl on stdin.
      expect(calls).toMatch(
        target === "pushguard-explain"
          ? /^pushguard explain .* stdin=team-a-token-0123$/m
          : /stdin=Authorization: Bearer team-a-token-0123 $/m,
      );
    },
  );

  it("asks for the volume the chart mounts the token Secret as", () => {
    const volume = /volumes\[\?\(@\.name=="([^"]+)"\)\]\.secret\.secretName/.exec(
      readFileSync(MAKEFILE, "utf8"),
    )?.[1];
    const secretOf = (files: readonly string[]) =>
      find(render(HELMS[1], files), "Deployment").spec.template.spec.volumes.find(
        (v: { name: string }) => v.name === volume,
      )?.secret.secretName;
    expect(secretOf(PROFILES.default)).toBe(`${FULLNAME}-tokens`);
    expect(secretOf(PROFILES.secured)).toBe("pushguard-tokens");
  });

  it.each(TOKEN_TARGETS)(
    "%s refuses an identity whose Secret key holds a hash, sending nothing",
    (target) => {
      const { status, stderr, calls } = run(target, { IDENTITY: "platform-admin" }, {});
      expect(status).not.toBe(0);
      expect(stderr).toMatch(
        /secret pushguard-tokens holds the SHA-256 hash of platform-admin's token, not the token/,
      );
      expect(calls).not.toContain("get secret");
      expect(calls).not.toMatch(/^(pushguard|curl) /m);
    },
  );

  it("reads a key with dots, escaped as kubectl's jsonpath needs", () => {
    const { status, calls } = run("pushguard-explain", { IDENTITY: "ci.example.com" }, {});
    expect(status).toBe(0);
    expect(calls).toContain("get secret pushguard-tokens -o jsonpath={.data.ci\\.example\\.com}");
    // The real kubectl, offline, on a Secret with such a key next to a shorter one.
    const real = spawnSync(
      "kubectl",
      [
        ...[
          "create",
          "secret",
          "generic",
          "x",
          "--from-literal=ci.example.com=dotted",
          "--from-literal=ci=plain",
        ],
        ...["--dry-run=client", "-o", "jsonpath={.data.ci\\.example\\.com}"],
      ],
      { encoding: "utf8" },
    );
    if (real.error) return; // no kubectl on this machine: the fake's log above is the check
    expect(Buffer.from(real.stdout, "base64").toString()).toBe("dotted");
  });

  it("reads what a pushgateway replica holds from its pod, without any token", () => {
    const { status, stderr, calls } = run("pushgateway-metrics", { IDENTITY: "", REPLICA: "1" }, {});
    expect(stderr).toBe("");
    expect(status).toBe(0);
    expect(calls).toContain("kubectl -n metrics port-forward pod/batch-pushguard-pushgateway-1 19093:9091");
    expect(calls).toContain("curl -fsS http://127.0.0.1:19093/metrics");
    expect(calls).not.toContain("get secret");
  });

  it("checks every pushgateway replica's own /-/healthy and /-/ready, then pushguard's", () => {
    const { status, stderr, calls } = run("pushgateway-health", { IDENTITY: "" }, {});
    expect(stderr).toBe("");
    expect(status).toBe(0);
    for (const pod of ["batch-pushguard-pushgateway-0", "batch-pushguard-pushgateway-1"]) {
      expect(calls).toContain(`port-forward pod/${pod} 19093:9091`);
    }
    expect(calls.match(/curl -sS http:\/\/127\.0\.0\.1:19093\/-\/healthy/g)).toHaveLength(2);
    expect(calls.match(/curl -sS http:\/\/127\.0\.0\.1:19093\/-\/ready/g)).toHaveLength(2);
    expect(calls).toContain("curl -sS http://127.0.0.1:19092/readyz");
  });

  it("takes SECRET as given, without asking the Deployment", () => {
    const { status, calls } = run("pushguard-explain", { SECRET: "my-tokens" }, { FAKE_SECRET_NAME: "" });
    expect(status).toBe(0);
    expect(calls).not.toContain("get deployment");
    expect(calls).toContain("get secret my-tokens ");
  });

  it.each(
    TOKEN_TARGETS.flatMap(
      (target) =>
        [
          [target, "the Secret cannot be read", { FAKE_SECRET: "unreadable" }, /secrets is forbidden/],
          [
            target,
            "the Secret lacks the key",
            { FAKE_SECRET: "without key" },
            /secret pushguard-tokens has no key team-a-ci/,
          ],
          [
            target,
            "the Deployment mounts no tokens Secret",
            { FAKE_SECRET_NAME: "" },
            /mounts no tokens Secret: set SECRET=<name>/,
          ],
        ] as Array<[string, string, Record<string, string>, RegExp]>,
    ),
  )("%s stops, sending nothing, when %s", (target, _why, fake, message) => {
    const { status, stderr, calls } = run(target, {}, fake);
    expect(status).not.toBe(0);
    expect(stderr).toMatch(message);
    expect(calls).not.toMatch(/^(pushguard|curl) /m);
    expect(calls).not.toContain("port-forward");
  });
});
