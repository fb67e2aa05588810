// Ollama's allowedHostsMiddleware (server/routes.go): when it listens on a loopback address it
// answers 403, with an empty body, to any request whose Host header does not name this machine.
// It defends against DNS rebinding, and it is what a tunnel forwarding `Host: cloud.example.com`
// runs into. These are pure functions so the table of accepted and refused hosts can be unit tested.

import { isLoopback, isPrivate, isUnspecified, parseIp, sameAddress } from './ip-address.js';

export interface HostPolicy {
  /** The machine's hostname (os.hostname() in Ollama), compared case-insensitively. */
  readonly hostname: string;
  /** Addresses of the machine's interfaces: a Host naming one of them is allowed (Ollama's isLocalIP). */
  readonly localAddresses: readonly string[];
}

/** Go's net.SplitHostPort, including its errors (undefined), because the check falls back on them. */
export function splitHostPort(hostport: string): { host: string; port: string } | undefined {
  const i = hostport.lastIndexOf(':');
  if (i < 0) return undefined; // missing port
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0) return undefined; // missing ']'
    if (end + 1 !== i) return undefined; // "[::1]" has no port; "[::1]x:1" is malformed
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(':')) return undefined; // too many colons, e.g. a bare "::1"
  }
  if (hostport.slice(j).includes('[') || hostport.slice(k).includes(']')) return undefined;
  return { host, port: hostport.slice(i + 1) };
}

/** Go's allowedHost: empty, localhost, the hostname, or a local-only top level domain. */
function allowedName(host: string, hostname: string): boolean {
  const h = host.toLowerCase();
  if (h === '' || h === 'localhost') return true;
  if (hostname !== '' && h === hostname.toLowerCase()) return true;
  return ['localhost', 'local', 'internal'].some((tld) => h.endsWith(`.${tld}`));
}

/**
 * Which branch of Ollama's middleware a Host header takes: "ip" (a loopback, private, unspecified
 * or local-interface address: passed straight on), "name" (localhost, the hostname, *.localhost,
 * *.local, *.internal: passed on, except that an OPTIONS request is answered 204 there), or
 * "forbidden" (403). Note the Go quirk kept on purpose: "[::1]" without a port fails SplitHostPort,
 * is then not an IP, and is refused, while a bare "::1" is accepted.
 */
export function classifyHost(hostHeader: string, policy: HostPolicy): 'ip' | 'name' | 'forbidden' {
  const host = splitHostPort(hostHeader)?.host ?? hostHeader;
  const ip = parseIp(host);
  if (ip) {
    if (isLoopback(ip) || isPrivate(ip) || isUnspecified(ip)) return 'ip';
    if (policy.localAddresses.some((a) => { const local = parseIp(a); return local !== undefined && sameAddress(local, ip); })) return 'ip';
  }
  return allowedName(host, policy.hostname) ? 'name' : 'forbidden';
}

/** True when Ollama would let a request with this Host header through. */
export function isAllowedHost(hostHeader: string, policy: HostPolicy): boolean {
  return classifyHost(hostHeader, policy) !== 'forbidden';
}

/** The check only runs when Ollama listens on a loopback address (the default 127.0.0.1:11434). */
export function hostCheckApplies(listenAddress: string): boolean {
  const ip = parseIp(listenAddress);
  return ip !== undefined && isLoopback(ip);
}
