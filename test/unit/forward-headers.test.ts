import { describe, expect, it } from "vitest";
import { forwardHeaders, type UpstreamRequest } from "../../src/upstream/forward.js";

const base: UpstreamRequest = {
  method: "PUT",
  path: "/metrics/job/x",
  headers: {},
  clientAddress: "10.1.2.3",
  requestId: "req-1",
};

describe("forwardHeaders", () => {
  it("drops hop-by-hop headers, those named in Connection, and the credential", () => {
    const headers = forwardHeaders(
      {
        ...base,
        headers: {
          connection: "keep-alive, x-secret-hop",
          "keep-alive": "timeout=5",
          "x-secret-hop": "1",
          te: "trailers",
          "transfer-encoding": "chunked",
          upgrade: "h2c",
          "proxy-authorization": "Basic abc",
          authorization: "Bearer super-secret",
          cookie: "session=1",
          "content-type": "text/plain; version=0.0.4",
          "user-agent": "curl/8",
        },
        body: Buffer.from("m 1\n"),
      },
      "127.0.0.1:9191",
    );
    expect(headers).toEqual({
      "content-type": "text/plain; version=0.0.4",
      "user-agent": "curl/8",
      "x-forwarded-for": "10.1.2.3",
      "x-forwarded-proto": "http",
      "x-request-id": "req-1",
      host: "127.0.0.1:9191",
      "content-length": "4",
    });
  });

  it("replaces client-supplied X-Forwarded-* and drops Content-Encoding of a decoded body", () => {
    const headers = forwardHeaders(
      {
        ...base,
        headers: {
          host: "pushguard.example",
          "x-forwarded-for": "6.6.6.6",
          forwarded: "for=6.6.6.6",
          "content-encoding": "GZIP",
        },
        body: Buffer.from("decoded"),
        bodyDecoded: true,
      },
      "pg:9091",
    );
    expect(headers["x-forwarded-for"]).toBe("10.1.2.3");
    expect(headers["x-forwarded-host"]).toBe("pushguard.example");
    expect(headers.forwarded).toBeUndefined();
    expect(headers["content-encoding"]).toBeUndefined();
    expect(headers["content-length"]).toBe("7");
    expect(headers.host).toBe("pg:9091");
  });
});
