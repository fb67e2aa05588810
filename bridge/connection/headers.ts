/**
 * Which HTTP headers may cross the tunnel. Used on both sides: the proxy strips before relaying,
 * the bridge strips again before Ollama sees anything (it trusts nothing the cloud sends).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** RFC 9110 §7.6.1 hop-by-hop headers, plus those HTTP/2 forbids outright (RFC 9113 §8.2.2). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'host',
]);

/**
 * Headers that belong to the cloud hop and must never reach the user's Ollama:
 * - authorization: the user's cloud credential (Ollama ignores it; leaking it is the risk);
 * - origin: Ollama answers 403 to a browser origin it does not know (OLLAMA-API.md);
 * - cookie and forwarding headers: the cloud's business, not Ollama's.
 */
const CLOUD_ONLY = new Set([
  'authorization',
  'cookie',
  'origin',
  'referer',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-real-ip',
]);

function connectionListed(headers: IncomingHttpHeaders): Set<string> {
  const value = headers['connection'];
  const listed = new Set<string>();
  for (const part of (Array.isArray(value) ? value.join(',') : value ?? '').split(',')) {
    const name = part.trim().toLowerCase();
    if (name) listed.add(name);
  }
  return listed;
}

/**
 * The tunnel's own headers (client key, key id: client-key.ts) are set by one hop for the next
 * only; a client that sends one must not pass it on (it would pick another key's scopes).
 */
const OWN_PREFIX = 'x-cloudtolocalllm-';

/** Request headers fit to relay toward Ollama: no hop-by-hop, no cloud-only, no tunnel-own, no pseudo-headers. */
export function relayableRequestHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = connectionListed(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || lower.startsWith(':')) continue;
    if (HOP_BY_HOP.has(lower) || CLOUD_ONLY.has(lower) || listed.has(lower) || lower.startsWith(OWN_PREFIX)) continue;
    out[lower] = value;
  }
  return out;
}

/** Response headers fit to relay back to the client: no hop-by-hop, no pseudo-headers. */
export function relayableResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = connectionListed(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || lower.startsWith(':')) continue;
    if (HOP_BY_HOP.has(lower) || listed.has(lower)) continue;
    // Ollama's own CORS answer is for Ollama's origin rules; the cloud side answers CORS itself.
    if (lower.startsWith('access-control-')) continue;
    out[lower] = value;
  }
  return out;
}
