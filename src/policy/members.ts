import type { Identity } from "../auth/identity.js";
import { claimAt } from "../auth/jwt.js";
import type { MemberSelector } from "../config/jwt-schema.js";
import { compilePattern } from "./template.js";

const NO_VARS = () => undefined;

/** Compiles a team member entry into a predicate over identities. */
export function compileMember(member: MemberSelector): (identity: Identity) => boolean {
  if (typeof member === "string") {
    return (identity) => identity.via === "static-token" && identity.name === member;
  }
  const checks: Array<(identity: Identity) => boolean> = [
    (identity) =>
      (identity.via === "oidc" || identity.via === "kubernetes") && identity.issuer === member.issuer,
  ];
  const glob = (pattern: string) => {
    const match = compilePattern(pattern);
    return (value: string | undefined) => value !== undefined && match(value, NO_VARS);
  };
  if (member.subject !== undefined) {
    const match = glob(member.subject);
    checks.push((identity) => match(identity.name));
  }
  if (member.group !== undefined) {
    const group = member.group;
    checks.push((identity) => identity.groups.includes(group));
  }
  if (member.namespace !== undefined) {
    const match = glob(member.namespace);
    checks.push((identity) => match(identity.namespace));
  }
  if (member.serviceAccount !== undefined) {
    const match = glob(member.serviceAccount);
    checks.push((identity) => match(identity.serviceAccount));
  }
  for (const [path, pattern] of Object.entries(member.claims ?? {})) {
    const match = glob(pattern);
    checks.push((identity) => {
      const value = claimAt(identity.claims, path);
      const values = Array.isArray(value) ? value : [value];
      return values.some(
        (item) =>
          (typeof item === "string" || typeof item === "number" || typeof item === "boolean") &&
          match(String(item)),
      );
    });
  }
  return (identity) => checks.every((check) => check(identity));
}

/** How a member entry reads in `check` and `explain` output. */
export function describeMember(member: MemberSelector): string {
  if (typeof member === "string") return member;
  return Object.entries(member)
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(" ");
}
