/**
 * The web client's static files (built by scripts/build-web.ts into server/dist/web):
 *
 *   /        → index.html        the landing page
 *   /app/    → app/index.html    the chat app (the web client's redirect URI)
 *   /docs/   → docs/index.html   the docs
 *   /app.js, /styles.css, ...    assets, by name
 *
 * GET and HEAD only; a path with no extension that names a folder with an index.html is
 * redirected to its trailing-slash form. Nothing outside `root` is ever read: dot segments,
 * dotfiles, backslashes and NUL are refused, the resolved (and symlink-free) path must stay under
 * the root, and only known extensions are served, each with its own content type. Every answer
 * carries a strict Content-Security-Policy as a header (not a <meta>, so frame-ancestors works and
 * the issuer's origin, known only at start, can be added to connect-src and form-action).
 */
import { createReadStream, realpathSync, statSync, type Stats } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, resolve, sep } from 'node:path';

export interface StaticSiteOptions {
  /** The folder of the built site (server/dist/web). */
  root: string;
  /** Origin of the OpenID issuer the app signs in with (fetched by the app: discovery, tokens). */
  issuerOrigin: string;
}

export type StaticHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/** Revalidated on every use (cheap with the ETag): pages and scripts change together on a deploy. */
const REVALIDATE = new Set(['.html', '.js', '.css', '.map', '.webmanifest', '.txt']);

/** The policy of every page: nothing but this origin's scripts and styles, and calls to the issuer. */
export function contentSecurityPolicy(issuerOrigin: string): string {
  const issuer = new URL(issuerOrigin).origin;
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ${issuer}`,
    "base-uri 'none'",
    `form-action ${issuer}`,
    "frame-ancestors 'none'",
  ].join('; ');
}

type Resolved = { kind: 'file'; file: string; stats: Stats; ext: string } | { kind: 'redirect'; location: string } | { kind: 'none' };

export function staticSite(options: StaticSiteOptions): StaticHandler {
  let root = resolve(options.root);
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the web root from the server's configuration
    root = realpathSync(root);
  } catch {
    // Not built yet: every request then finds nothing and falls through.
  }
  const csp = contentSecurityPolicy(options.issuerOrigin);

  const fileIn = (relative: string): { file: string; stats: Stats } | undefined => {
    const file = resolve(root, '.' + relative);
    if (!file.startsWith(root + sep)) return undefined;
    let stats: Stats | undefined;
    let real: string;
    try {
      // ENOTDIR, EACCES, ELOOP...: nothing to serve.
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- inside the root: checked on the line above
      stats = statSync(file, { throwIfNoEntry: false });
      if (!stats?.isFile()) return undefined;
      // A symlink inside the root must not lead out of it.
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- inside the root; its real path is checked below
      real = realpathSync(file);
    } catch {
      return undefined;
    }
    return real.startsWith(root + sep) ? { file: real, stats } : undefined;
  };

  const locate = (rawUrl: string): Resolved => {
    if (!rawUrl.startsWith('/')) return { kind: 'none' };
    const queryAt = rawUrl.indexOf('?');
    const rawPath = queryAt >= 0 ? rawUrl.slice(0, queryAt) : rawUrl;
    const query = queryAt >= 0 ? rawUrl.slice(queryAt) : '';
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      return { kind: 'none' };
    }
    if (path.includes('\0') || path.includes('\\') || path.includes('//')) return { kind: 'none' };
    // Refuses '.', '..' and dotfiles (.env, .git) in any segment.
    if (path.split('/').some((segment) => segment.startsWith('.'))) return { kind: 'none' };
    if (path.endsWith('/')) {
      const found = fileIn(`${path}index.html`);
      return found ? { kind: 'file', ...found, ext: '.html' } : { kind: 'none' };
    }
    const ext = extname(path).toLowerCase();
    if (ext === '') {
      // /app → /app/ (the query kept), so relative links and the redirect URI have one form.
      return fileIn(`${path}/index.html`) ? { kind: 'redirect', location: `${rawPath}/${query}` } : { kind: 'none' };
    }
    if (!(ext in CONTENT_TYPES)) return { kind: 'none' };
    const found = fileIn(path);
    return found ? { kind: 'file', ...found, ext } : { kind: 'none' };
  };

  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const found = locate(req.url ?? '/');
    if (found.kind === 'none') return false;

    const common: Record<string, string> = {
      'content-security-policy': csp,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-resource-policy': 'same-origin',
      'x-frame-options': 'DENY',
    };
    req.resume();
    if (found.kind === 'redirect') {
      res.writeHead(301, { ...common, location: found.location, 'content-length': '0', 'cache-control': 'no-cache' });
      res.end();
      return true;
    }

    const { file, stats, ext } = found;
    const etag = `W/"${stats.size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`;
    const headers: Record<string, string> = {
      ...common,
      'content-type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
      'cache-control': REVALIDATE.has(ext) ? 'no-cache' : 'public, max-age=86400',
      etag,
      'last-modified': stats.mtime.toUTCString(),
    };
    const ifNoneMatch = req.headers['if-none-match'];
    if (ifNoneMatch && ifNoneMatch.split(',').some((tag) => tag.trim() === etag || tag.trim() === '*')) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    headers['content-length'] = String(stats.size);
    if (req.method === 'HEAD') {
      res.writeHead(200, headers);
      res.end();
      return true;
    }
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- fileIn() returned it: a real path inside the web root
    const stream = createReadStream(file);
    stream.once('open', () => {
      res.writeHead(200, headers);
      stream.pipe(res);
    });
    stream.once('error', () => {
      if (!res.headersSent) {
        const body = 'the file could not be read';
        res.writeHead(500, { ...common, 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' });
        res.end(body);
      } else {
        res.destroy();
      }
    });
    res.once('close', () => stream.destroy());
    return true;
  };
}
