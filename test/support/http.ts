import { request } from "node:http";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON (problem+json for rejections). */
  json<T = Record<string, unknown>>(): T;
}

/**
 * Sends one request with the path exactly as given (fetch would normalize `..`, `%2F` and
 * friends, hiding the cases a path parser must survive).
 */
export function send(
  baseUrl: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port, method, path, headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
export const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`,
});

/** An answer as the differential suites judge it: its status, and its problem when it is one. */
export interface Answer {
  readonly status: number;
  readonly problemJson: boolean;
  /** The problem+json body (`code`, `rule`, `holder`, ...), when it is one and parses. */
  readonly problem: Record<string, unknown> | undefined;
  /** The problem's `code`. */
  readonly code: string | undefined;
  readonly text: string;
}

export function answerOf(response: RawResponse): Answer {
  const problemJson = String(response.headers["content-type"] ?? "").startsWith("application/problem+json");
  let problem: Record<string, unknown> | undefined;
  if (problemJson) {
    try {
      problem = response.json();
    } catch {
      problem = undefined;
    }
  }
  const code = problem?.code === undefined ? undefined : String(problem.code);
  return { status: response.status, problemJson, problem, code, text: response.text };
}
