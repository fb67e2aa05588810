import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contentSecurityPolicy, staticSite } from './static-files.js';

const ISSUER = 'https://auth.example.com/';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Sends the request target exactly as written (fetch would normalise `..` and `%2e`). */
function raw(origin: string, method: string, target: string, headers: Record<string, string> = {}): Promise<Answer> {
  const { port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('staticSite', () => {
  let dir: string;
  let site: string;
  let origin: string;
  let server: http.Server;
  const fellThrough: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ctll-static-'));
    site = join(dir, 'site');
    await mkdir(join(site, 'app'), { recursive: true });
    await mkdir(join(site, 'docs'), { recursive: true });
    await writeFile(join(site, 'index.html'), '<!doctype html><title>landing</title>');
    await writeFile(join(site, 'app', 'index.html'), '<!doctype html><title>app</title>');
    await writeFile(join(site, 'docs', 'index.html'), '<!doctype html><title>docs</title>');
    await writeFile(join(site, 'app.js'), 'console.log("app");');
    await writeFile(join(site, 'app.js.map'), '{"version":3}');
    await writeFile(join(site, 'styles.css'), 'body{margin:0}');
    await writeFile(join(site, 'icon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    await writeFile(join(site, 'notes.exe'), 'MZ');
    await writeFile(join(site, 'README'), 'no extension');
    await writeFile(join(site, '.env'), 'SECRET=1');
    await writeFile(join(dir, 'secret.txt'), 'outside the root');
    await writeFile(join(dir, 'site-sibling.txt'), 'next to the root');
    await symlink(join(dir, 'secret.txt'), join(site, 'linked.txt'));

    const handler = staticSite({ root: site, issuerOrigin: ISSUER });
    server = http.createServer((req, res) => {
      if (handler(req, res)) return;
      fellThrough.push(`${req.method} ${req.url}`);
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"fell through"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  test('serves the three pages at /, /app/ and /docs/', async () => {
    for (const [path, title] of [['/', 'landing'], ['/app/', 'app'], ['/docs/', 'docs'], ['/app/?code=x&state=y', 'app']] as const) {
      const a = await raw(origin, 'GET', path);
      assert.equal(a.status, 200, path);
      assert.equal(a.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(a.body, new RegExp(`<title>${title}</title>`));
    }
  });

  test('redirects a folder without its slash, keeping the query', async () => {
    const a = await raw(origin, 'GET', '/app?code=abc&state=s');
    assert.equal(a.status, 301);
    assert.equal(a.headers.location, '/app/?code=abc&state=s');
    assert.equal((await raw(origin, 'GET', '/docs')).headers.location, '/docs/');
  });

  test('gives each known extension its content type', async () => {
    const expected: Record<string, string> = {
      '/app.js': 'text/javascript; charset=utf-8',
      '/app.js.map': 'application/json; charset=utf-8',
      '/styles.css': 'text/css; charset=utf-8',
      '/icon.svg': 'image/svg+xml',
    };
    for (const [path, type] of Object.entries(expected)) {
      const a = await raw(origin, 'GET', path);
      assert.equal(a.status, 200, path);
      assert.equal(a.headers['content-type'], type, path);
    }
  });

  test('sends the security headers and a CSP naming the issuer origin', async () => {
    const a = await raw(origin, 'GET', '/app/');
    assert.equal(a.headers['x-content-type-options'], 'nosniff');
    assert.equal(a.headers['referrer-policy'], 'no-referrer');
    const csp = a.headers['content-security-policy'];
    assert.equal(csp, contentSecurityPolicy(ISSUER));
    assert.equal(
      csp,
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' https://auth.example.com; " +
        "base-uri 'none'; form-action https://auth.example.com; frame-ancestors 'none'",
    );
    assert.equal(a.headers['cache-control'], 'no-cache');
    assert.equal((await raw(origin, 'GET', '/icon.svg')).headers['cache-control'], 'public, max-age=86400');
  });

  test('answers HEAD with the headers and no body', async () => {
    const get = await raw(origin, 'GET', '/styles.css');
    const head = await raw(origin, 'HEAD', '/styles.css');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(get.body)));
    assert.equal(head.headers['content-type'], 'text/css; charset=utf-8');
    assert.equal(head.headers.etag, get.headers.etag);
  });

  test('answers 304 to a matching If-None-Match', async () => {
    const first = await raw(origin, 'GET', '/app.js');
    assert.ok(first.headers.etag);
    const again = await raw(origin, 'GET', '/app.js', { 'if-none-match': first.headers.etag });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
  });

  test('never leaves the root: traversal attempts fall through', async () => {
    fellThrough.length = 0;
    const attempts = [
      '/../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E%2Fsecret.txt',
      '/app/..%2f..%2fsecret.txt',
      '/..%5csecret.txt',
      '/app/%2e%2e/%2e%2e/secret.txt',
      '/%2e%2e/site-sibling.txt',
      '/linked.txt',
      '/.env',
      '/app/.%2e/index.html',
      '/%00/index.html',
      '/index.html%00.js',
      '//etc/passwd',
      '/%2F%2Fevil.example/',
      '/%zz',
    ];
    for (const target of attempts) {
      const a = await raw(origin, 'GET', target);
      assert.equal(a.status, 404, target);
      assert.doesNotMatch(a.body, /outside the root|next to the root|SECRET/, target);
    }
    assert.equal(fellThrough.length, attempts.length);
  });

  test('refuses unknown extensions, missing files, other methods and absolute-form targets', async () => {
    fellThrough.length = 0;
    for (const [method, target] of [
      ['GET', '/notes.exe'],
      ['GET', '/README'],
      ['GET', '/missing.js'],
      ['GET', '/missing/'],
      ['GET', '/favicon.ico'],
      ['POST', '/'],
      ['PUT', '/app.js'],
      ['DELETE', '/app/'],
    ] as const) {
      const a = await raw(origin, method, target);
      assert.equal(a.status, 404, `${method} ${target}`);
    }
    assert.equal(fellThrough.length, 8);
    // An absolute-form request target (as sent to a forward proxy) is not a path.
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(new URL(origin).port), '127.0.0.1', () => {
        socket.end('GET http://127.0.0.1/index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      });
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('utf8')));
      socket.on('end', () => resolve(text));
    });
    assert.match(answer, /^HTTP\/1\.1 404/);
  });

  test('a root that does not exist serves nothing', async () => {
    const handler = staticSite({ root: join(dir, 'not-built'), issuerOrigin: ISSUER });
    const req = { method: 'GET', url: '/', headers: {}, resume() {} } as unknown as http.IncomingMessage;
    assert.equal(handler(req, {} as http.ServerResponse), false);
  });
});
