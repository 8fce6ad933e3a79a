// Who may call a route, by client address: the route's `allow` minus its `deny`, compiled once per
// policy load into CIDR sets (net/cidr.ts). The resolved client address is already unmapped from
// ::ffff:, but the guard does not rely on it: the sets read every mapped spelling as IPv4.
import { CidrSet, parseIp } from '../net/cidr.js';
import type { AddressList } from '../types/policy.js';

export interface IpAllow {
  /**
   * `address` is the resolved client address. Something that is not an IP address is refused,
   * except by `any` without `deny`, which admits every request without looking.
   */
  allows(address: string): boolean;
}

/** `allow: any` without `deny`: every request, without looking (the guard chain skips the step). */
export const EVERYONE: IpAllow = Object.freeze({ allows: () => true });

// Checks are synchronous, so one buffer serves every compiled guard.
const words = new Uint32Array(4);

/**
 * Compiles a route's `allow` and `deny`. Throws on a malformed CIDR: the loader has validated
 * them, so that is a bug to surface at load, never a request to let through.
 */
export function compileIpAllow(allow: AddressList, deny: readonly string[]): IpAllow {
  const denied = deny.length > 0 ? CidrSet.compile(deny) : undefined;
  if (allow.any && !denied) return EVERYONE;
  const allowed = allow.any ? undefined : CidrSet.compile(allow.cidrs);
  return Object.freeze({
    allows(address: string): boolean {
      if (parseIp(address, words) === 0) return false;
      if (denied && denied.hasWords(words)) return false;
      return !allowed || allowed.hasWords(words);
    },
  });
}
