// The route table, mirroring Ollama's GenerateRoutes, and a gin-like matcher: exact methods (a
// wrong method is a 404 like any unknown route), ":param" segments, and gin's trailing-slash
// redirect, which gin answers before any middleware runs.

import type { Exchange } from './exchange.js';
import * as api from './native-api.js';
import * as v1 from './openai-api.js';

export type Handler = (x: Exchange) => void | Promise<void>;

export interface Route {
  readonly method: string;
  readonly pattern: string;
  readonly handle: Handler;
  /** How the body is consumed: "json" collects it; the others only hash and count it as it streams. */
  readonly body: 'json' | 'stream' | 'none';
  /** Error style: native `{"error": "..."}` or OpenAI `{"error": {"message", "type", ...}}`. */
  readonly errors: 'native' | 'openai';
}

const r = (method: string, pattern: string, handle: Handler, body: Route['body'] = 'none', errors: Route['errors'] = 'native'): Route =>
  ({ method, pattern, handle, body, errors });

export const ROUTES: readonly Route[] = [
  r('HEAD', '/', api.root),
  r('GET', '/', api.root),
  r('HEAD', '/api/version', api.version),
  r('GET', '/api/version', api.version),
  r('POST', '/api/pull', api.pull, 'json'),
  r('POST', '/api/push', api.push, 'json'),
  r('HEAD', '/api/tags', api.tags),
  r('GET', '/api/tags', api.tags),
  r('POST', '/api/show', api.show, 'json'),
  r('DELETE', '/api/delete', api.remove, 'json'),
  r('POST', '/api/create', api.create, 'json'),
  r('POST', '/api/blobs/:digest', api.createBlob, 'stream'),
  r('HEAD', '/api/blobs/:digest', api.headBlob),
  r('POST', '/api/copy', api.copy, 'json'),
  r('GET', '/api/ps', api.ps),
  r('POST', '/api/generate', api.generate, 'json'),
  r('POST', '/api/chat', api.chat, 'json'),
  r('POST', '/api/embed', api.embed, 'json'),
  r('POST', '/api/embeddings', api.embeddings, 'json'),
  r('POST', '/v1/chat/completions', v1.chatCompletions, 'json', 'openai'),
  r('POST', '/v1/completions', v1.completions, 'json', 'openai'),
  r('POST', '/v1/embeddings', v1.embeddings, 'json', 'openai'),
  r('GET', '/v1/models', v1.listModels, 'none', 'openai'),
  r('GET', '/v1/models/:model', v1.retrieveModel, 'none', 'openai'),
];

function matchPattern(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i] ?? '';
    const g = got[i] ?? '';
    if (w.startsWith(':')) {
      if (g === '') return undefined;
      params[w.slice(1)] = g;
    } else if (w !== g) return undefined;
  }
  return params;
}

export type RouteMatch =
  | { readonly kind: 'route'; readonly route: Route; readonly params: Record<string, string> }
  /** gin's RedirectTrailingSlash: 301 for GET, 307 otherwise, to `location`. */
  | { readonly kind: 'redirect'; readonly status: 301 | 307; readonly path: string }
  | { readonly kind: 'none' };

/** `path` is the decoded path without the query string. */
export function matchRoute(method: string, path: string): RouteMatch {
  for (const route of ROUTES) {
    if (route.method !== method) continue;
    const params = matchPattern(route.pattern, path);
    if (params) return { kind: 'route', route, params };
  }
  if (method !== 'CONNECT' && path !== '/' && path.endsWith('/')) {
    const trimmed = path.slice(0, -1);
    if (ROUTES.some((route) => route.method === method && matchPattern(route.pattern, trimmed))) {
      return { kind: 'redirect', status: method === 'GET' ? 301 : 307, path: trimmed };
    }
  }
  return { kind: 'none' };
}
