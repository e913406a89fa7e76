import { describe, expect, it } from "vitest";
import { createAuthenticator } from "../../src/auth/authenticate.js";
import { extractCredential } from "../../src/auth/credentials.js";
import { ANONYMOUS } from "../../src/auth/identity.js";
import { createStaticTokenVerifier } from "../../src/auth/static-token.js";
import { hashToken, parseConfig } from "../../src/config/load.js";
import type { ProblemCode, ProblemError } from "../../src/errors.js";
import { problemOf, rejectionOf } from "../support/problems.js";

const TOKEN_A = "team-a-token-0123456789abcdef";
const TOKEN_B = "team-b-token-0123456789abcdef";

const basic = (userPass: string) => `Basic ${Buffer.from(userPass, "utf8").toString("base64")}`;

function expectUnauthorized(problem: ProblemError, code: ProblemCode): void {
  expect(problem.code).toBe(code);
  expect(problem.status).toBe(401);
  expect(problem.headers["www-authenticate"]).toMatch(/^Bearer realm="pushguard"/);
  expect(problem.headers["www-authenticate"]).toMatch(/Basic realm="pushguard"/);
}

describe("extractCredential", () => {
  it.each(["Bearer", "bearer", "BEARER", "bEaReR"])("reads a %s token", (scheme) => {
    expect(extractCredential(`${scheme} ${TOKEN_A}`)).toBe(TOKEN_A);
  });

  it("tolerates extra spaces around and after the scheme", () => {
    expect(extractCredential(`  Bearer   ${TOKEN_A}  `)).toBe(TOKEN_A);
  });

  it("keeps b64token characters and padding of a Bearer token", () => {
    expect(extractCredential("Bearer a-b.c_d~e+f/g==")).toBe("a-b.c_d~e+f/g==");
  });

  it.each([
    ["any user", `ci:${TOKEN_A}`],
    ["an empty user", `:${TOKEN_A}`],
    ["the identity name as user", `team-a-ci:${TOKEN_A}`],
  ])("reads the token from the Basic password with %s", (_user, userPass) => {
    expect(extractCredential(basic(userPass))).toBe(TOKEN_A);
  });

  it.each(["basic", "BASIC"])("accepts the %s scheme in any letter case", (scheme) => {
    expect(extractCredential(basic(`u:${TOKEN_A}`).replace("Basic", scheme))).toBe(TOKEN_A);
  });

  it("splits Basic at the first colon: the password may contain colons", () => {
    expect(extractCredential(basic("user:tok:en"))).toBe("tok:en");
  });

  it("decodes a UTF-8 Basic password", () => {
    expect(extractCredential(basic("user:jöb-tökén"))).toBe("jöb-tökén");
  });

  it.each([
    ["undefined", undefined],
    ["empty", ""],
    ["blank", "   "],
  ])("returns undefined for a %s header", (_what, header) => {
    expect(extractCredential(header)).toBeUndefined();
  });

  it.each([
    ["Basic without a colon", basic(TOKEN_A)],
    ["Basic with an empty password", basic("user:")],
    ["Basic with only a colon", basic(":")],
    ["Basic that is not base64", "Basic not_base64!"],
    ["Basic with base64url characters", "Basic dXNlcjp0b2tlbg-_"],
    ["Basic with misplaced padding", "Basic dX=Nlcjp0b2tlbg"],
    ["an unknown scheme", `Token ${TOKEN_A}`],
    ["Digest", 'Digest username="a", response="b"'],
    ["a scheme without a value", "Bearer"],
    ["a scheme with a blank value", "Bearer    "],
    ["a token without a scheme", TOKEN_A],
    ["a Bearer token with spaces", "Bearer two words"],
    ["a Bearer token with a comma", "Bearer a,b"],
    ["a Bearer token with a quote", 'Bearer "abc"'],
  ])("refuses %s with ERR_AUTH_INVALID and a challenge", (_what, header) => {
    const problem = problemOf(() => extractCredential(header));
    expectUnauthorized(problem, "ERR_AUTH_INVALID");
    expect(problem.headers["www-authenticate"]).toContain('error="invalid_request"');
  });

  it.each([
    ["the Token scheme", `Token ${TOKEN_A}`],
    ["an ApiKey scheme", `ApiKey ${TOKEN_A}`],
    ["a token without a scheme", TOKEN_A],
    ["a Bearer token with a comma", "Bearer a,b"],
    ["Bearer without a token", "Bearer"],
  ])("says how to send the token instead of %s: as Bearer, or as the Basic password", (_what, header) => {
    const problem = problemOf(() => extractCredential(header));
    expect(problem.message).toContain('"Authorization: Bearer <token>"');
    expect(problem.message).toContain("password of HTTP Basic auth");
  });

  it("never echoes the credential in the problem", () => {
    for (const header of [basic("s3cret-no-colon"), "Token s3cret-token", "Bearer s3cret token"]) {
      const problem = problemOf(() => extractCredential(header));
      expect(problem.message).not.toContain("s3cret");
      expect(JSON.stringify(problem.details)).not.toContain("s3cret");
      expect(JSON.stringify(problem.headers)).not.toContain("s3cret");
    }
  });
});

describe("createAuthenticator", () => {
  const config = parseConfig(
    [
      "upstream: { url: http://127.0.0.1:9191 }",
      "identities:",
      "  static:",
      `    - { name: team-a-ci, sha256: "${hashToken(TOKEN_A).toString("hex")}" }`,
      "    - { name: team-b-ci, tokenEnv: TEAM_B_TOKEN }",
      "teams:",
      "  - { name: team-a, members: [team-a-ci, team-b-ci], jobs: [a-*], actions: [push] }",
    ].join("\n"),
    "auth.yaml",
    { TEAM_B_TOKEN: TOKEN_B },
  );
  const authenticate = createAuthenticator(config);

  it.each([
    ["Bearer", `Bearer ${TOKEN_A}`, "team-a-ci"],
    ["lower-case bearer", `bearer ${TOKEN_B}`, "team-b-ci"],
    ["Basic password", basic(`anything:${TOKEN_A}`), "team-a-ci"],
    ["Basic password (Python basic_auth_handler style)", basic(`team-b-ci:${TOKEN_B}`), "team-b-ci"],
  ])("maps a valid token given as %s to its identity", async (_how, header, name) => {
    expect(await authenticate(header)).toMatchObject({ name, via: "static-token" });
  });

  it("does not let the Basic user name choose the identity", async () => {
    expect((await authenticate(basic(`team-b-ci:${TOKEN_A}`))).name).toBe("team-a-ci");
  });

  it.each([
    ["an unknown token", `Bearer ${TOKEN_A}x`],
    ["a token differing in its last character", `Bearer ${TOKEN_A.slice(0, -1)}g`],
    ["a prefix of a valid token", `Bearer ${TOKEN_A.slice(0, -1)}`],
    ["a token in the wrong case", `Bearer ${TOKEN_A.toUpperCase()}`],
    ["the token's SHA-256 instead of the token", `Bearer ${hashToken(TOKEN_A).toString("hex")}`],
    ["an unknown Basic password", basic(`team-a-ci:${TOKEN_A}x`)],
    ["the identity name as the Basic password", basic(`${TOKEN_A}:team-a-ci`)],
  ])(
    "refuses %s with ERR_AUTH_INVALID (invalid_token), never falling back to anonymous",
    async (_what, header) => {
      const problem = await rejectionOf(() => authenticate(header));
      expectUnauthorized(problem, "ERR_AUTH_INVALID");
      expect(problem.headers["www-authenticate"]).toContain('error="invalid_token"');
      expect(problem.message).not.toContain(TOKEN_A.slice(0, 8));
    },
  );

  it("refuses a malformed header with ERR_AUTH_INVALID (invalid_request)", async () => {
    const problem = await rejectionOf(() => authenticate(basic("no-colon")));
    expectUnauthorized(problem, "ERR_AUTH_INVALID");
    expect(problem.headers["www-authenticate"]).toContain('error="invalid_request"');
  });

  it.each([undefined, "", "  "])(
    "treats a missing or blank header (%j) as the anonymous identity",
    async (header) => {
      const identity = await authenticate(header);
      expect(identity).toBe(ANONYMOUS);
      expect(identity.via).toBe("anonymous");
    },
  );

  it("takes only the Authorization header: a token anywhere else is never seen", async () => {
    // The authenticator's only input is the header value; a URL like `/metrics/job/x?token=...`
    // cannot reach it. With no header the caller is anonymous, whatever the query string said.
    expect(authenticate.length).toBe(1);
    expect(await authenticate(undefined)).toBe(ANONYMOUS);
  });
});

describe("createStaticTokenVerifier", () => {
  const verify = createStaticTokenVerifier([
    { name: "team-a-ci", sha256: hashToken(TOKEN_A) },
    { name: "team-b-ci", sha256: hashToken(TOKEN_B) },
  ]);

  it("returns the identity of a known token", () => {
    expect(verify(TOKEN_A)).toMatchObject({ name: "team-a-ci", via: "static-token" });
    expect(verify(TOKEN_B)?.name).toBe("team-b-ci");
  });

  it("returns frozen identities", () => {
    expect(Object.isFrozen(verify(TOKEN_A))).toBe(true);
  });

  it.each([
    ["differs only in the last character", `${TOKEN_A.slice(0, -1)}${TOKEN_A.endsWith("f") ? "e" : "f"}`],
    ["differs only in the first character", `X${TOKEN_A.slice(1)}`],
    ["has a trailing newline", `${TOKEN_A}\n`],
    ["has a trailing space", `${TOKEN_A} `],
    ["is a prefix", TOKEN_A.slice(0, -1)],
    ["is empty", ""],
  ])("rejects a token that %s", (_how, token) => {
    expect(token).not.toBe(TOKEN_A);
    expect(verify(token)).toBeUndefined();
  });

  it("knows nothing when configured with no identities", () => {
    expect(createStaticTokenVerifier([])(TOKEN_A)).toBeUndefined();
  });
});
