/**
 * Validates the request target the cloud asks for, before anything else looks at it.
 * The bridge builds the URL it sends to Ollama itself, from the configured Ollama URL and a path
 * that passed these checks, so no request from the cloud can reach another host, port or scheme.
 */
import { TUNNEL_AUTHORITY } from '../connection/protocol.js';

export const MAX_PATH_LENGTH = 2048;

export type TargetCheck =
  | { ok: true; path: string; query: string }
  | { ok: false; status: number; code: string; message: string };

function refuse(status: number, code: string, message: string): TargetCheck {
  return { ok: false, status, code, message };
}

/**
 * @param rawPath     the HTTP/2 `:path` exactly as received
 * @param authority   the `:authority` received (the proxy always sends TUNNEL_AUTHORITY)
 * @param scheme      the `:scheme` received
 * @param ollamaHost  host[:port] of the configured Ollama URL, also accepted as authority
 */
export function checkRequestTarget(
  rawPath: string | undefined,
  authority: string | undefined,
  scheme: string | undefined,
  ollamaHost: string,
): TargetCheck {
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    return refuse(400, 'bad-scheme', `the bridge only relays HTTP requests; scheme "${scheme}" is refused`);
  }
  if (authority !== undefined && authority !== TUNNEL_AUTHORITY && authority.toLowerCase() !== ollamaHost.toLowerCase()) {
    return refuse(
      421,
      'other-host',
      `the bridge only serves the Ollama API at its configured Ollama URL; a request for host "${authority}" is refused`,
    );
  }
  if (rawPath === undefined || rawPath === '') return refuse(400, 'no-path', 'the request has no path');
  if (rawPath.length > MAX_PATH_LENGTH) {
    return refuse(414, 'path-too-long', `the request path is ${rawPath.length} characters; the limit is ${MAX_PATH_LENGTH}`);
  }
  if (!rawPath.startsWith('/')) {
    // Absolute-form ("http://host/...") or authority-form targets would let the cloud pick the host.
    return refuse(400, 'absolute-form', 'absolute-form or authority-form request targets are refused; send a path like /api/chat');
  }
  const q = rawPath.indexOf('?');
  const encodedPath = q === -1 ? rawPath : rawPath.slice(0, q);
  const query = q === -1 ? '' : rawPath.slice(q);
  if (/[\u0000-\u0020\u007f\\#]/.test(rawPath)) {
    return refuse(400, 'bad-characters', 'the request path contains control characters, spaces, backslashes or a fragment');
  }
  let path: string;
  try {
    path = decodeURIComponent(encodedPath);
  } catch {
    return refuse(400, 'bad-encoding', 'the request path has malformed percent-encoding');
  }
  // A decoded path that still holds % was double-encoded: a classic way to smuggle "../".
  if (path.includes('%') || /[\u0000-\u001f\u007f\\]/.test(path)) {
    return refuse(400, 'bad-encoding', 'the request path is double-encoded or encodes control characters');
  }
  const segments = path.split('/').slice(1);
  if (segments.some((s) => s === '..' || s === '.')) {
    return refuse(400, 'traversal', 'path traversal ("." or ".." segments) is refused');
  }
  if (path !== '/' && segments.some((s) => s === '')) {
    return refuse(400, 'empty-segment', 'the request path has an empty segment ("//" or a trailing "/")');
  }
  return { ok: true, path, query };
}
