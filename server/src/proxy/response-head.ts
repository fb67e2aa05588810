/**
 * What of an answer from the user's computer may reach a cloud client. The bridge runs on a
 * machine the cloud does not control, so its answer heads are untrusted input (issue 13,
 * finding 5): a `Set-Cookie` would land on the cloud's own origin (the web app shares it), a
 * `Location` could send clients elsewhere, a status of 999 or a header Node cannot write would
 * break the client or the relay. Only what a client of Ollama needs passes (an allow-list), with
 * values HTTP can carry, and only final statuses 200-599.
 */
import { validateHeaderValue, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { REFUSAL_HEADER } from '@cloudtolocalllm/bridge/connection/protocol';

/**
 * Ollama answers with a content type and, for fixed bodies, a length; its OpenAI-compatible
 * streams add `Cache-Control: no-cache`. A refusal carries its reason code, `Allow` for 405 and
 * `Retry-After` where waiting helps (the proxy's own 503 when no bridge is connected).
 */
export const RELAYED_RESPONSE_HEADERS: readonly string[] = ['content-type', 'content-length', 'cache-control', 'allow', 'retry-after', REFUSAL_HEADER];

/** Is this a status the relay passes on (a final one HTTP clients understand)? */
export function isRelayableStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 200 && status <= 599;
}

function carriable(name: string, value: string): boolean {
  try {
    validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}

/** The allowed headers of an answer head, each with a value HTTP/1.1 can carry; the rest is dropped. */
export function relayedResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of RELAYED_RESPONSE_HEADERS) {
    const raw = headers[name];
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.join(', ') : String(raw);
    if (name === 'content-length' && !/^\d{1,15}$/.test(value)) continue;
    if (value.length > 1024 || !carriable(name, value)) continue;
    out[name] = value;
  }
  return out;
}
