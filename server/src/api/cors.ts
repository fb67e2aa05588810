/**
 * CORS for browser clients of the cloud endpoint. The cloud side answers CORS itself: Ollama's
 * own answer is about Ollama's origins, and the bridge never forwards a browser's Origin.
 * Credentials are bearer tokens in a header, never cookies, so allowing an origin cannot let a
 * site act as the user (no ambient credential); the allow-list narrows it further if set.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface CorsOptions {
  /** Allowed origins; `['*']` allows any. */
  origins: readonly string[];
}

const ALLOWED_METHODS = 'GET, HEAD, POST, DELETE, OPTIONS';
const EXPOSED = 'content-type, content-length, retry-after, www-authenticate, x-cloudtolocalllm-refusal';
const HEADER_NAME = /^[A-Za-z0-9-]+$/;

export function originAllowed(origin: string, options: CorsOptions): boolean {
  return options.origins.includes('*') || options.origins.includes(origin);
}

/** Adds CORS headers to a response for an allowed Origin. */
export function applyCors(req: IncomingMessage, res: ServerResponse, options: CorsOptions): void {
  const origin = req.headers.origin;
  if (!origin || !originAllowed(origin, options)) return;
  res.setHeader('access-control-allow-origin', options.origins.includes('*') ? '*' : origin);
  res.setHeader('access-control-expose-headers', EXPOSED);
  if (!options.origins.includes('*')) res.setHeader('vary', 'origin');
}

/** Answers a preflight. Returns true when the request was one. */
export function answerPreflight(req: IncomingMessage, res: ServerResponse, options: CorsOptions): boolean {
  if (req.method !== 'OPTIONS' || !req.headers['access-control-request-method']) return false;
  const origin = req.headers.origin;
  if (!origin || !originAllowed(origin, options)) {
    const body = JSON.stringify({ error: `origin ${origin ?? '(none)'} is not allowed to call this API from a browser` });
    res.writeHead(403, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  }
  const requested = String(req.headers['access-control-request-headers'] ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => HEADER_NAME.test(h));
  res.writeHead(204, {
    'access-control-allow-origin': options.origins.includes('*') ? '*' : origin,
    'access-control-allow-methods': ALLOWED_METHODS,
    'access-control-allow-headers': ['authorization', 'content-type', ...requested].join(', '),
    'access-control-max-age': '600',
    ...(options.origins.includes('*') ? {} : { vary: 'origin' }),
  });
  res.end();
  return true;
}
