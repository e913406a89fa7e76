import { describe, expect, it } from "vitest";
import { classify, requiredAction } from "../../src/pushgateway/classify.js";
import { problemOf } from "../support/problems.js";

/** [method, raw path, search, expected action, expected upstream path] */
const routed: Array<[string, string, string, string, string]> = [
  ["PUT", "/metrics/job/nightly", "", "push", "/metrics/job/nightly"],
  ["POST", "/metrics/job/nightly/instance/i1", "", "push", "/metrics/job/nightly/instance/i1"],
  ["DELETE", "/metrics/job/nightly/instance/i1", "", "delete", "/metrics/job/nightly/instance/i1"],
  ["PUT", "/metrics/job@base64/YS9i", "", "push", "/metrics/job@base64/YS9i"],
  // Writes are forwarded in canonical form, rebuilt from the parsed key, never copied.
  ["PUT", "/metrics/job/a%2Fx/y", "", "push", "/metrics/job/a/x/y"],
  ["POST", "/metrics/job/a/x/", "", "push", "/metrics/job/a/x@base64/="],
  ["PUT", "/metrics/job/a/zz/1/aa/2", "", "push", "/metrics/job/a/aa/2/zz/1"],
  ["PUT", "/metrics/job/a/job/b", "", "push", "/metrics/job/a"],
  ["DELETE", "/metrics/job/a/x/%2541", "", "delete", "/metrics/job/a/x@base64/JTQx"],
  // A query string never reaches a write.
  ["PUT", "/metrics/job/a", "?x=1", "push", "/metrics/job/a"],
  ["PUT", "/api/v1/admin/wipe", "", "wipe", "/api/v1/admin/wipe"],
  ["GET", "/metrics", "", "read", "/metrics"],
  ["HEAD", "/metrics", "", "read", "/metrics"],
  ["GET", "/api/v1/metrics", "", "read", "/api/v1/metrics"],
  ["GET", "/api/v1/status", "", "read", "/api/v1/status"],
  ["GET", "/", "", "read", "/"],
  ["GET", "/", "?q=1", "read", "/?q=1"],
  ["GET", "/static/css/style.css", "", "read", "/static/css/style.css"],
  [
    "GET",
    "/static/vendor/bootstrap-4.3.1/js/bootstrap.min.js",
    "",
    "read",
    "/static/vendor/bootstrap-4.3.1/js/bootstrap.min.js",
  ],
  ["GET", "/-/healthy", "", "probe", "/-/healthy"],
  ["HEAD", "/-/ready", "", "probe", "/-/ready"],
];

/** [method, raw path, expected code, expected allow header] */
const refused: Array<[string, string, string, string | undefined]> = [
  ["GET", "/api/v1/admin/wipe", "ERR_METHOD_NOT_ALLOWED", "PUT"],
  ["POST", "/api/v1/admin/wipe", "ERR_METHOD_NOT_ALLOWED", "PUT"],
  ["DELETE", "/api/v1/admin/wipe", "ERR_METHOD_NOT_ALLOWED", "PUT"],
  ["GET", "/metrics/job/nightly", "ERR_METHOD_NOT_ALLOWED", "PUT, POST, DELETE"],
  ["HEAD", "/metrics/job@base64/YQ", "ERR_METHOD_NOT_ALLOWED", "PUT, POST, DELETE"],
  ["PATCH", "/metrics/job/nightly", "ERR_METHOD_NOT_ALLOWED", "PUT, POST, DELETE"],
  ["GET", "/metrics/job", "ERR_METHOD_NOT_ALLOWED", "PUT, POST, DELETE"],
  ["PUT", "/metrics", "ERR_METHOD_NOT_ALLOWED", "GET, HEAD"],
  ["POST", "/api/v1/metrics", "ERR_METHOD_NOT_ALLOWED", "GET, HEAD"],
  ["DELETE", "/", "ERR_METHOD_NOT_ALLOWED", "GET, HEAD"],
  ["POST", "/-/healthy", "ERR_METHOD_NOT_ALLOWED", "GET, HEAD"],
  ["PUT", "/-/ready", "ERR_METHOD_NOT_ALLOWED", "GET, HEAD"],
  ["PUT", "/-/quit", "ERR_ROUTE_FORBIDDEN", undefined],
  ["POST", "/-/quit", "ERR_ROUTE_FORBIDDEN", undefined],
  ["GET", "/-/quit", "ERR_ROUTE_FORBIDDEN", undefined],
  ["POST", "/-/reload", "ERR_ROUTE_FORBIDDEN", undefined],
  ["GET", "/debug/pprof", "ERR_ROUTE_FORBIDDEN", undefined],
  ["GET", "/debug/pprof/", "ERR_ROUTE_FORBIDDEN", undefined],
  ["GET", "/debug/pprof/heap", "ERR_ROUTE_FORBIDDEN", undefined],
  ["POST", "/debug/pprof/symbol", "ERR_ROUTE_FORBIDDEN", undefined],
  ["PUT", "/metrics/job", "ERR_BAD_GROUPING_KEY", undefined],
  ["PUT", "/metrics/job/", "ERR_BAD_GROUPING_KEY", undefined],
  ["DELETE", "/metrics/job@base64", "ERR_BAD_GROUPING_KEY", undefined],
  ["PUT", "/metrics/job@base64/", "ERR_BAD_GROUPING_KEY", undefined],
  ["PUT", "/metrics/job@base64/=", "ERR_BAD_GROUPING_KEY", undefined],
  ["PUT", "/metrics/job/a/x", "ERR_BAD_GROUPING_KEY", undefined],
  ["PUT", "/metrics/job/a/x/%2e%2e", "ERR_BAD_GROUPING_KEY", undefined],
  ["PUT", "/metrics/job/../../-/quit", "ERR_BAD_GROUPING_KEY", undefined],
  ["GET", "/nope", "ERR_ROUTE_NOT_FOUND", undefined],
  ["GET", "/status", "ERR_ROUTE_NOT_FOUND", undefined],
  ["GET", "/api/v1/", "ERR_ROUTE_NOT_FOUND", undefined],
  ["GET", "/metrics/", "ERR_ROUTE_NOT_FOUND", undefined],
  ["GET", "/static/../-/quit", "ERR_ROUTE_NOT_FOUND", undefined],
  ["GET", "/static/%2e%2e/debug/pprof/heap", "ERR_ROUTE_NOT_FOUND", undefined],
  // Pushgateway decodes before routing (these would be a push, a wipe and pprof there); pushguard
  // matches the raw path, so these spellings are unknown routes and never forwarded.
  ["PUT", "/metrics/jo%62/a", "ERR_ROUTE_NOT_FOUND", undefined],
  ["PUT", "/metrics/job%40base64/YQ", "ERR_ROUTE_NOT_FOUND", undefined],
  ["PUT", "/api/v1/admin/wip%65", "ERR_ROUTE_NOT_FOUND", undefined],
  ["GET", "/debug%2Fpprof/heap", "ERR_ROUTE_NOT_FOUND", undefined],
  ["PUT", "/-/qui%74", "ERR_ROUTE_NOT_FOUND", undefined],
  ["PUT", "/-/quit/", "ERR_ROUTE_NOT_FOUND", undefined],
  // An absolute-form request target is not a path.
  ["PUT", "http://pushgateway/metrics/job/a", "ERR_ROUTE_NOT_FOUND", undefined],
];

describe("classify", () => {
  it.each(routed)("%s %s%s → %s %s", (method, rawPath, search, action, upstreamPath) => {
    const operation = classify(method, rawPath, search);
    expect(operation.action).toBe(action);
    expect(operation.method).toBe(method);
    expect(operation.upstreamPath).toBe(upstreamPath);
  });

  it.each(refused)("%s %s → %s", (method, rawPath, code, allow) => {
    const problem = problemOf(() => classify(method, rawPath));
    expect(problem.code).toBe(code);
    expect(problem.headers.allow).toBe(allow);
  });

  it("carries the parsed grouping key on writes", () => {
    const operation = classify("PUT", "/metrics/job@base64/dGVhbS1hLXg/path@base64/L3Zhcg/instance/i1");
    expect(operation).toEqual({
      action: "push",
      method: "PUT",
      groupingKey: { job: "team-a-x", labels: { instance: "i1", path: "/var" } },
      upstreamPath: "/metrics/job/team-a-x/instance/i1/path@base64/L3Zhcg",
    });
  });

  it("requires a configurable action for everything but probes", () => {
    expect(requiredAction(classify("PUT", "/metrics/job/a"))).toBe("push");
    expect(requiredAction(classify("DELETE", "/metrics/job/a"))).toBe("delete");
    expect(requiredAction(classify("PUT", "/api/v1/admin/wipe"))).toBe("wipe");
    expect(requiredAction(classify("GET", "/api/v1/metrics"))).toBe("read");
    expect(requiredAction(classify("GET", "/-/healthy"))).toBeUndefined();
  });
});
