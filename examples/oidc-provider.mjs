#!/usr/bin/env node
// A real OpenID Connect provider (the `oidc-provider` package) for the demo and the tests:
// discovery, JWKS, and the client_credentials grant issuing RS256 JWT access tokens for
// pushguard's audience, without the caller naming a resource.
// Run alone: node examples/oidc-provider.mjs [port]  (default 9093)
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import Provider from "oidc-provider";

/** Demo client: client_credentials only. */
export const DEMO_CLIENT = { clientId: "demo-team-c", clientSecret: "demo-team-c-secret" };
export const DEMO_AUDIENCE = "pushguard";

/** A fresh RSA signing key as a private JWK with a kid. */
export function signingKey(kid) {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };
}

/**
 * Tokens and grants kept in a Map of this provider's own. Passing an adapter (instead of relying on
 * the package's default, which is the same thing) keeps oidc-provider from warning at start that
 * its development-only adapter is in use: the demo and the tests need nothing that outlives them.
 */
class MapAdapter {
  constructor(store, model) {
    this.store = store;
    this.model = model;
  }
  async upsert(id, payload, expiresIn) {
    this.store.set(`${this.model}:${id}`, { payload, expiresAt: Date.now() + expiresIn * 1000 });
  }
  async find(id) {
    const entry = this.store.get(`${this.model}:${id}`);
    return entry && entry.expiresAt > Date.now() ? entry.payload : undefined;
  }
  async findByUid() {
    return undefined;
  }
  async findByUserCode() {
    return undefined;
  }
  async consume(id) {
    const entry = this.store.get(`${this.model}:${id}`);
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) {
    this.store.delete(`${this.model}:${id}`);
  }
  async revokeByGrantId() {}
}

/**
 * Starts the provider on 127.0.0.1:port (0 = any free port).
 * options.clients: [{ clientId, clientSecret }] (default: the demo client)
 * options.keys: private JWKs (default: one fresh RSA key); the first one signs.
 * options.accessTokenTtl: seconds (default 300)
 */
export async function startOidcProvider(options = {}) {
  const port = options.port ?? 0;
  const audience = options.audience ?? DEMO_AUDIENCE;
  const clients = (options.clients ?? [DEMO_CLIENT]).map((client) => ({
    client_id: client.clientId,
    client_secret: client.clientSecret,
    grant_types: ["client_credentials"],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: "client_secret_basic",
  }));
  const server = createServer();
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const store = new Map();
  const provider = new Provider(issuer, {
    clients,
    adapter: class extends MapAdapter {
      constructor(model) {
        super(store, model);
      }
    },
    cookies: { keys: [randomBytes(32).toString("base64url")] },
    ttl: { ClientCredentials: options.accessTokenTtl ?? 300 },
    jwks: { keys: options.keys ?? [signingKey("demo-key-1")] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => `urn:${audience}`,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          audience,
          scope: "",
          accessTokenTTL: options.accessTokenTtl ?? 300,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
  });
  server.on("request", provider.callback());
  return {
    issuer,
    provider,
    /** Gets an access token with the client_credentials grant, the way a batch job would. */
    async token(client = options.clients?.[0] ?? DEMO_CLIENT) {
      const response = await fetch(`${issuer}/token`, {
        method: "POST",
        headers: {
          authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}`,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: "grant_type=client_credentials",
      });
      const body = await response.json();
      if (!response.ok) throw new Error(`token request failed: ${JSON.stringify(body)}`);
      return body.access_token;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const running = await startOidcProvider({ port: Number(process.argv[2] ?? 9093) });
  console.log(
    `OIDC provider ${running.issuer} (client ${DEMO_CLIENT.clientId} / ${DEMO_CLIENT.clientSecret})`,
  );
  const stop = () => running.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
