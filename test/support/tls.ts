import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Certificate {
  /** PEM private key. */
  readonly key: string;
  /** PEM certificate. */
  readonly cert: string;
}

/**
 * A throwaway certificate authority and a server certificate it signs for 127.0.0.1, made with
 * the openssl command line (Debian's `openssl`), for tests of TLS trust such as `caFile`.
 */
export function certificateAuthority(name: string): { ca: Certificate; server: Certificate } {
  const dir = mkdtempSync(join(tmpdir(), "pushguard-tls-"));
  const file = (base: string) => join(dir, base);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  try {
    openssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${name} CA`,
      "-keyout",
      file("ca.key"),
      "-out",
      file("ca.crt"),
    );
    openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=127.0.0.1",
      "-keyout",
      file("server.key"),
      "-out",
      file("server.csr"),
    );
    writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1\n");
    openssl(
      "x509",
      "-req",
      "-in",
      file("server.csr"),
      "-CA",
      file("ca.crt"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      file("san.ext"),
      "-out",
      file("server.crt"),
    );
    const read = (base: string) => readFileSync(file(base), "utf8");
    return {
      ca: { key: read("ca.key"), cert: read("ca.crt") },
      server: { key: read("server.key"), cert: read("server.crt") },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
