// Ollama's CORS layer: gin-contrib/cors configured in server/routes.go with AllowWildcard and the
// origins of envconfig.AllowedOrigins(). A request whose Origin is not allowed gets 403 with an
// empty body before anything else runs; an allowed one gets CORS headers, and an allowed OPTIONS
// preflight is answered 204 right here. A relay must therefore never forward a browser's Origin.

/** Always allowed, after any OLLAMA_ORIGINS entries (envconfig.AllowedOrigins). */
export const DEFAULT_ALLOWED_ORIGINS: readonly string[] = Object.freeze([
  ...['localhost', '127.0.0.1', '0.0.0.0'].flatMap((h) => [
    `http://${h}`,
    `https://${h}`,
    `http://${h}:*`,
    `https://${h}:*`,
  ]),
  'app://*',
  'file://*',
  'tauri://*',
  'vscode-webview://*',
  'vscode-file://*',
]);

const ALLOW_METHODS = 'GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS';
// Ollama's AllowHeaders, canonicalised by gin-contrib/cors.
const ALLOW_HEADERS = [
  'Authorization', 'Content-Type', 'User-Agent', 'Accept', 'X-Requested-With', 'Openai-Beta',
  'X-Stainless-Arch', 'X-Stainless-Async', 'X-Stainless-Custom-Poll-Interval', 'X-Stainless-Helper-Method',
  'X-Stainless-Lang', 'X-Stainless-Os', 'X-Stainless-Package-Version', 'X-Stainless-Poll-Helper',
  'X-Stainless-Retry-Count', 'X-Stainless-Runtime', 'X-Stainless-Runtime-Version', 'X-Stainless-Timeout',
].join(',');
const MAX_AGE_SECONDS = String(12 * 60 * 60);

export type CorsHeaders = Record<string, string | string[]>;

export type OriginVerdict =
  /** No Origin header, or Origin equal to http(s)://<Host> (gin-contrib/cors: "not a CORS request"). */
  | { readonly kind: 'not-cors' }
  | { readonly kind: 'forbidden' }
  /** Allowed: add `headers`; when `preflight` the answer is 204 and nothing else runs. */
  | { readonly kind: 'allowed'; readonly preflight: boolean; readonly headers: CorsHeaders };

export class OriginPolicy {
  private readonly exact: Set<string>;
  private readonly wildcards: Array<readonly [string, string]>;
  private readonly allowAll: boolean;

  /** `origins` are the full list, e.g. allowedOrigins(extra). */
  constructor(origins: readonly string[]) {
    this.allowAll = origins.includes('*');
    // gin-contrib/cors lower-cases the configured origins but not the request's Origin.
    const normalized = origins.map((o) => o.toLowerCase());
    this.exact = new Set(normalized.filter((o) => !o.includes('*')));
    this.wildcards = normalized.filter((o) => o.includes('*') && o !== '*').map((o) => {
      const star = o.indexOf('*');
      if (o.indexOf('*', star + 1) >= 0) throw new Error(`only one * is allowed in an allowed origin: ${o}`);
      if (star === 0) return ['*', o.slice(1)] as const;
      if (star === o.length - 1) return [o.slice(0, -1), '*'] as const;
      return [o.slice(0, star), o.slice(star + 1)] as const;
    });
  }

  isAllowed(origin: string): boolean {
    if (this.allowAll || this.exact.has(origin)) return true;
    return this.wildcards.some(([prefix, suffix]) => {
      if (prefix === '*') return origin.endsWith(suffix);
      if (suffix === '*') return origin.startsWith(prefix);
      return origin.startsWith(prefix) && origin.endsWith(suffix);
    });
  }

  evaluate(origin: string | undefined, host: string, method: string): OriginVerdict {
    if (origin === undefined || origin === '') return { kind: 'not-cors' };
    if (origin === `http://${host}` || origin === `https://${host}`) return { kind: 'not-cors' };
    if (!this.isAllowed(origin)) return { kind: 'forbidden' };
    const allowOrigin = this.allowAll ? '*' : origin;
    if (method === 'OPTIONS') {
      const headers: CorsHeaders = {
        'Access-Control-Allow-Methods': ALLOW_METHODS,
        'Access-Control-Allow-Headers': ALLOW_HEADERS,
        'Access-Control-Max-Age': MAX_AGE_SECONDS,
        'Access-Control-Allow-Origin': allowOrigin,
      };
      if (!this.allowAll) headers['Vary'] = ['Origin', 'Access-Control-Request-Method', 'Access-Control-Request-Headers'];
      return { kind: 'allowed', preflight: true, headers };
    }
    const headers: CorsHeaders = { 'Access-Control-Allow-Origin': allowOrigin };
    if (!this.allowAll) headers['Vary'] = 'Origin';
    return { kind: 'allowed', preflight: false, headers };
  }
}

/** OLLAMA_ORIGINS entries first, then Ollama's defaults. */
export function allowedOrigins(extra: readonly string[] = []): string[] {
  return [...extra, ...DEFAULT_ALLOWED_ORIGINS];
}
