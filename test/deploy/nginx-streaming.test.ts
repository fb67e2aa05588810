/**
 * The deployment's nginx configuration (server/deploy/nginx, rendered with test ports) run by the
 * host's nginx, with a self-signed certificate, in front of the real cloud server (in-process
 * runtime, embedded issuer, PKCE sign-in) and the real bridge CLI connected through it:
 *
 *  - token streams pass through TLS and nginx unbuffered, over HTTP/1.1 and HTTP/2: the first
 *    token arrives while the Ollama emulator is still generating;
 *  - the bridge's upgrade (/ws/bridge) passes: HTTP/2 on the socket, and a raw WebSocket;
 *  - TLS 1.2/1.3 only, modern ciphers, unknown names refused, HSTS and security headers once;
 *    also as operators check it, with openssl s_client and curl against a control server that
 *    accepts everything (so each refusal is nginx's, not the client's);
 *  - body limits: large image bodies pass on /ollama/, blobs have no limit;
 *  - gzip never touches a stream; the ACME webroot is served on plain HTTP;
 *  - a stream with more than a minute of silence between tokens and over 5 minutes long is not
 *    cut (CTLL_LONG_TESTS=1 or CI=true only: it takes about 5 min 5 s).
 *
 * Skipped when nginx, openssl or curl is missing, except in CI (CI=true), where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import WebSocket from 'ws';
import {
  CLIENT_ADDRESS_HEADER,
  CREDENTIAL_EXPIRES_HEADER,
  MACHINE_HEADER,
  MAX_MACHINES_HEADER,
  subprotocolFor,
  TUNNEL_PROTOCOL_VERSION,
} from '@cloudtolocalllm/bridge/connection/protocol';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { waitUntil } from '../tunnel/harness.js';
import { OllamaEmulator, expectedText } from '@cloudtolocalllm/ollama-emulator';
import { KeyStore } from '@cloudtolocalllm/bridge/keys/key-store';
import { create, reforge } from '../keys/keys-harness.js';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { startCloudServer, type CloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig } from '@cloudtolocalllm/server/config';
import {
  EDGE_ROUTE_PATH,
  ORIGINAL_ENCODING_HEADER,
  ORIGINAL_LENGTH_HEADER,
  ORIGINAL_URI_HEADER,
  UPSTREAM_AUTHORIZATION_HEADER,
  UPSTREAM_CLIENT_KEY_HEADER,
  UPSTREAM_HEADER,
  UPSTREAM_PATH_HEADER,
} from '@cloudtolocalllm/server/api/edge-route';
import { silentLogger } from '@cloudtolocalllm/server/log';
import { MemoryAuditLog } from '@cloudtolocalllm/server/audit';
import {
  freePort,
  headerCount,
  http2Stream,
  httpsRequest,
  httpsStream,
  IN_CI,
  renderNginx,
  ROOT,
  run,
  selfSignedCertificate,
  startBridgeProcess,
  startNginx,
  which,
  type BridgeProcess,
  type NginxPorts,
  type RunningNginx,
  type StreamResult,
} from './deploy-harness.js';

const nginxBin = which('nginx');
const opensslBin = which('openssl');
const missing = [!nginxBin && 'nginx (apt-get install -y nginx)', !opensslBin && 'openssl', !which('curl') && 'curl'].filter(Boolean).join(', ');
if (missing && IN_CI) test('nginx, openssl and curl are installed (CI machines must have them)', () => assert.fail(`missing: ${missing}`));
const skip = missing ? `missing on this machine: ${missing}; CI=true makes this a failure` : false;
const LONG = process.env['CTLL_LONG_TESTS'] === '1' || IN_CI;

/** What the Ollama emulator answers on /api/generate for n tokens, as the client must see it. */
function textOf(result: StreamResult): string {
  return result.lines
    .map((l) => JSON.parse(l.line) as { response?: string; done?: boolean })
    .filter((o) => !o.done)
    .map((o) => o.response ?? '')
    .join('');
}

/**
 * `openssl s_server` with the test certificate, accepting every protocol and suite OpenSSL has
 * (SECLEVEL=0): what the clients reach when only nginx's configuration says no.
 */
async function startControlServer(cert: string, key: string, env: NodeJS.ProcessEnv): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(opensslBin!, ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', cert, '-key', key, '-cipher', 'ALL:@SECLEVEL=0', '-www'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`openssl s_server did not start within 10 s: ${out}`)), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ACCEPT')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`openssl s_server exited (${code}): ${out}`));
    });
  }).catch((e: unknown) => {
    child.kill();
    throw e;
  });
  return {
    port,
    stop: async () => {
      child.kill();
      await exited;
    },
  };
}

describe('nginx in front of the cloud server (TLS, HTTP/2, streaming, WebSocket)', { skip, concurrency: false }, () => {
  let dir: string;
  let cloud: CloudServer;
  const signIn = async (username: string): Promise<string> => {
    const issuer = cloud.embeddedIssuer!;
    return (await headlessSignIn({ issuer: issuer.issuer, clientId: issuer.desktopClientId, audience: cloud.audience, username })).accessToken;
  };
  let emulator: OllamaEmulator;
  let nginx: RunningNginx;
  let bridge: BridgeProcess;
  let token: string;
  let clientKey: string;
  let ca: Buffer;
  let ports: NginxPorts;
  let acmeRoot: string;
  let rendered: { confDir: string; runDir: string; conf: string };
  const tokenTimes = new Map<number, number[]>();
  const audit = new MemoryAuditLog();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctll-nginx-test-'));
    // nginx's workers run as nobody and serve the ACME webroot from under this directory (the
    // deploy script makes $CTLL_STATE_DIR 755 for the same reason).
    chmodSync(dir, 0o755);
    emulator = new OllamaEmulator({ tokenIntervalMs: 200 });
    const ollamaUrl = await emulator.start();
    emulator.on('token', (r) => {
      const list = tokenTimes.get(r.id) ?? [];
      list.push(Date.now());
      tokenTimes.set(r.id, list);
    });
    // The production heartbeat (10 s pings, 20 s timeout), not the tests' fast one: the bridge
    // child uses the production one too, and a busy machine must not cut the long stream.
    // Edge routing on, as deployed (CTLL_EDGE_PORT): nginx relays what it can to the proxy itself.
    cloud = await startCloudServer(loadConfig({ CTLL_EDGE_PORT: '0' }, ['--port', '0', '--runtime', 'process']), { audit, log: silentLogger });
    const { cert, key } = await selfSignedCertificate(join(dir, 'tls'));
    ca = readFileSync(cert);
    ports = { https: await freePort(), http: await freePort(), health: await freePort() };
    acmeRoot = join(dir, 'acme');
    rendered = await renderNginx(dir, {
      ports,
      upstreamPort: Number(new URL(cloud.url).port),
      edgePort: Number(new URL(cloud.edgeUrl!).port),
      cert,
      key,
      acmeRoot,
      // A small /ollama/ body limit keeps the limit test fast; the production default (100m) is
      // checked on the rendered text below.
      extra: ['--ollama-max-body', '8m'],
    });
    nginx = await startNginx(nginxBin!, rendered, ports.health);
    token = await signIn(`nginx-${randomBytes(3).toString('hex')}`);
    // A client key of this user, made as `npm run keys -- create` makes it; the bridge sends its
    // verifier to the proxy (edge routing's keyed requests).
    const keysDir = join(dir, 'keys');
    const { sub } = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string };
    new KeyStore(keysDir).recordSubject(sub);
    clientKey = create(keysDir, ['--name', 'edge']).key;
    bridge = await startBridgeProcess({
      proxyUrl: `wss://localhost:${ports.https}/ws/bridge`,
      token,
      ollamaUrl,
      caFile: cert,
      allow: 'blobs',
      env: { CTLL_CONFIG_DIR: keysDir },
    });
  });

  after(async () => {
    await bridge?.stop();
    await nginx?.stop();
    await cloud?.close();
    await emulator?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the bridge CLI connected through nginx: its upgrade to HTTP/2 on the socket passed (no WebSocket fallback)', async () => {
    const status = await httpsRequest({ port: ports.https, path: '/api/proxy/status', ca, headers: { authorization: `Bearer ${token}` } });
    assert.equal(status.status, 200, status.body);
    const body = JSON.parse(status.body) as { bridgeConnected?: boolean; computers?: Array<{ transport?: string }> };
    assert.equal(body.bridgeConnected, true);
    assert.deepEqual(body.computers?.map((c) => c.transport), ['h2'], status.body);
  });

  /** The api-backend's count of bridges, the bytes its splice carried, and the bridges nginx sent straight. */
  async function bridgeBooks(): Promise<{ gauge: number; splicedBytes: number; direct: number }> {
    const gauge = (await cloud.metrics.bridgesConnected.get()).values.reduce((n, v) => n + v.value, 0);
    const spliced = (await cloud.metrics.bytesRelayed.get()).values.filter((v) => v.labels['direction'] === 'bridge').reduce((n, v) => n + v.value, 0);
    const direct = (await cloud.metrics.edgeRoutes.get()).values.filter((v) => v.labels['route'] === 'direct' && v.labels['reason'] === 'bridge').reduce((n, v) => n + v.value, 0);
    return { gauge, splicedBytes: spliced, direct };
  }
  const auditOf = (user: string, action: string): Array<Record<string, unknown>> =>
    audit.entries.filter((e) => e.userHash === user && e.action === action) as unknown as Array<Record<string, unknown>>;
  const userOf = (t: string): string => userHash((JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string }).sub);
  type BridgeSocket = { ws?: WebSocket; status?: number; body?: string };
  /** A bridge's WebSocket upgrade through nginx: the open socket, or the refusal's status and body. */
  const openBridgeSocket = (port: number, bearer: string, headers: Record<string, string> = {}): Promise<BridgeSocket> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`wss://localhost:${port}/ws/bridge`, [subprotocolFor(TUNNEL_PROTOCOL_VERSION)], {
        ca,
        headers: { authorization: `Bearer ${bearer}`, ...headers },
        perMessageDeflate: false,
      });
      ws.once('open', () => resolve({ ws }));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once('error', reject);
    });

  test("edge routing: a bridge's upgrade goes from nginx straight to the proxy; the api-backend keeps its books from the proxy's link events", async () => {
    const t = await signIn(`edge-bridge-${randomBytes(3).toString('hex')}`);
    const user = userOf(t);
    const before = await bridgeBooks();
    const b = await startBridgeProcess({ proxyUrl: `wss://localhost:${ports.https}/ws/bridge`, token: t, ollamaUrl: emulator.url, caFile: join(dir, 'tls', 'fullchain.pem') });
    try {
      // Connected, audited and counted as a spliced bridge would be, from the proxy's events.
      await waitUntil(() => auditOf(user, 'bridge.connect').length === 1, 'the connect is audited', 10_000);
      const line = auditOf(user, 'bridge.connect')[0]!;
      assert.equal(line['result'], 'ok');
      assert.equal(line['address'], '127.0.0.1', 'the address nginx saw, as the api-backend set it');
      assert.match(String(line['client']), /CloudToLocalLLM/i, JSON.stringify(line));
      const mid = await bridgeBooks();
      assert.equal(mid.direct - before.direct, 1, 'the upgrade went direct');
      assert.equal(mid.gauge - before.gauge, 1, 'ctll_bridges_connected counts it');
      const status = await httpsRequest({ port: ports.https, path: '/api/proxy/status', ca, headers: { authorization: `Bearer ${t}` } });
      const shown = JSON.parse(status.body) as { bridgeConnected: boolean; computers: Array<{ name: string }> };
      assert.equal(shown.bridgeConnected, true, status.body);
      assert.deepEqual(shown.computers.map((c) => c.name), [line['machine']], 'the audit names the computer the proxy holds');
      // A chat over it: neither the request nor the tunnel crosses the api-backend.
      const generate = await httpsRequest({
        port: ports.https,
        path: '/ollama/api/generate',
        method: 'POST',
        ca,
        headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama3.2', prompt: 'hi', stream: false, options: { num_predict: 3 } }),
      });
      assert.equal(generate.status, 200, generate.body);
      assert.equal((JSON.parse(generate.body) as { response: string }).response, expectedText(3));
      assert.equal((await bridgeBooks()).splicedBytes, before.splicedBytes, "no byte of the tunnel went through the api-backend's splice");
    } finally {
      await b.stop();
    }
    await waitUntil(() => auditOf(user, 'bridge.disconnect').length === 1, 'the disconnect is audited', 10_000);
    assert.equal((await bridgeBooks()).gauge, before.gauge);
    const status = await httpsRequest({ port: ports.https, path: '/api/proxy/status', ca, headers: { authorization: `Bearer ${t}` } });
    assert.equal((JSON.parse(status.body) as { bridgeConnected: boolean }).bridgeConnected, false, status.body);
  });

  test("edge routing: a bridge straight to its proxy cannot set the terms itself, and the user's computer limit holds", async () => {
    const t = await signIn(`edge-terms-${randomBytes(3).toString('hex')}`);
    const user = userOf(t);
    const open = (machine: string): Promise<BridgeSocket> =>
      openBridgeSocket(ports.https, t, {
        [MACHINE_HEADER]: machine,
        // A bridge's own claims of the terms the api-backend sets: nginx replaces each.
        [CLIENT_ADDRESS_HEADER]: '198.51.100.7',
        [MAX_MACHINES_HEADER]: '99',
        [CREDENTIAL_EXPIRES_HEADER]: String(Date.now() + 500),
      });
    const opened: WebSocket[] = [];
    try {
      for (const m of ['one', 'two', 'three', 'four']) {
        const r = await open(m);
        assert.ok(r.ws, `${m}: ${r.status} ${r.body}`);
        opened.push(r.ws);
      }
      const fifth = await open('five');
      assert.equal(fifth.status, 429, fifth.body);
      assert.match(String(fifth.body), /too many computers: 4 are connected/);
      await waitUntil(() => auditOf(user, 'bridge.connect').length === 4, 'four connects audited', 10_000);
      assert.deepEqual([...new Set(auditOf(user, 'bridge.connect').map((l) => l['address']))], ['127.0.0.1'], 'not the address the bridge claimed');
      // The expiry it claimed (half a second) is not the tunnel's: the token's is.
      await new Promise((r) => setTimeout(r, 1_500));
      assert.ok(opened.every((ws) => ws.readyState === WebSocket.OPEN), 'no tunnel was cut at the expiry the bridge claimed');
      assert.equal(auditOf(user, 'bridge.disconnect').length, 0);
    } finally {
      for (const ws of opened) ws.close();
    }
    await waitUntil(() => auditOf(user, 'bridge.disconnect').length === 4, 'four disconnects audited', 10_000);
  });

  test("edge routing: a bridge's upgrade the api-backend would refuse goes through, and gets the api-backend's answer", async () => {
    const before = await edgeCounts();
    const bad = await openBridgeSocket(ports.https, 'not-a-token');
    assert.equal(bad.status, 401, bad.body);
    assert.ok((JSON.parse(String(bad.body)) as { error?: string }).error, bad.body);
    // An Upgrade that is none of the tunnel's: refused by the api-backend, naming what it takes.
    const other = await httpsRequest({ port: ports.https, path: '/ws/bridge', ca, headers: { authorization: `Bearer ${token}`, connection: 'Upgrade', upgrade: 'h2c' } });
    assert.equal(other.status, 426, other.body);
    assert.match(other.body, /takes the bridge's tunnel as a WebSocket/);
    const after = await edgeCounts();
    const grew = (reason: string): number => (after.through[reason] ?? 0) - (before.through[reason] ?? 0);
    assert.deepEqual({ credential: grew('credential'), upgrade: grew('upgrade'), direct: after.direct - before.direct }, { credential: 1, upgrade: 1, direct: 0 }, JSON.stringify(after));
  });

  test('a raw WebSocket to /ws/bridge gets 101 with the tunnel subprotocol through nginx', async () => {
    const other = await signIn(`ws-${randomBytes(3).toString('hex')}`);
    const ws = new WebSocket(`wss://localhost:${ports.https}/ws/bridge`, [subprotocolFor(TUNNEL_PROTOCOL_VERSION)], {
      ca,
      headers: { authorization: `Bearer ${other}` },
      perMessageDeflate: false,
    });
    const opened = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => resolve(ws.protocol));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
    assert.equal(opened, subprotocolFor(TUNNEL_PROTOCOL_VERSION));
    ws.close();
  });

  for (const protocol of ['HTTP/1.1', 'HTTP/2'] as const) {
    test(`a token stream over ${protocol} is not buffered: the first token arrives while the emulator is still generating`, async () => {
      const tokens = 20; // 20 tokens, 200 ms apart: about 4 s of generation
      let firstLineAt: number | undefined;
      let stillGeneratingAtFirstLine: boolean | undefined;
      const onLine = (): void => {
        if (firstLineAt !== undefined) return;
        firstLineAt = Date.now();
        const record = emulator.requests.findLast((r) => r.path === '/api/generate');
        stillGeneratingAtFirstLine = record !== undefined && record.finishedAt === undefined && record.tokensSent < tokens;
      };
      const request = {
        port: ports.https,
        path: '/ollama/api/generate',
        body: { model: 'llama3.2', prompt: 'stream through nginx', options: { num_predict: tokens } },
        token,
        ca,
        onLine,
      };
      const result = protocol === 'HTTP/2' ? await http2Stream(request) : await httpsStream({ ...request, headers: { 'accept-encoding': 'gzip' } });
      assert.equal(result.status, 200, result.lines.map((l) => l.line).join('\n'));
      assert.equal(result.protocol, protocol === 'HTTP/2' ? 'HTTP/2.0' : 'HTTP/1.1');
      assert.equal(result.error, undefined);
      assert.equal(textOf(result), expectedText(tokens));
      assert.equal(stillGeneratingAtFirstLine, true, 'the first token line arrived only after the emulator had finished');
      // Spread over the generation, not delivered in one burst at the end.
      const record = emulator.requests.findLast((r) => r.path === '/api/generate')!;
      const generation = record.finishedAt! - record.startedAt;
      const spread = result.lines.at(-1)!.at - result.lines[0]!.at;
      assert.ok(spread > generation * 0.6, `lines arrived within ${spread} ms of a ${generation} ms generation: buffered`);
      // Each token reached the client before the emulator had written three more (an order of
      // events, so a slow machine, which slows both, does not change it).
      const emitted = tokenTimes.get(record.id) ?? [];
      assert.equal(emitted.length, tokens);
      const late = result.lines.slice(0, tokens - 3).flatMap((l, i) => (l.at < emitted[i + 3]! ? [] : [`token ${i}: ${l.at - emitted[i]!} ms after it was written`]));
      assert.deepEqual(late, [], 'tokens held back by the path');
      // No compression on streams, even when the client offers it.
      assert.equal(result.headers['content-encoding'], undefined);
      assert.equal(result.headers['x-accel-buffering'], 'no');
    });
  }

  test('HTTP/2 is offered to clients (ALPN h2) and TLS 1.3 is negotiated by default', async () => {
    const session = http2.connect(`https://localhost:${ports.https}`, { ca, host: '127.0.0.1', servername: 'localhost' } as http2.SecureClientSessionOptions);
    try {
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        session.on('error', reject);
        const req = session.request({ ':path': '/health' });
        req.on('response', (h) => {
          req.resume();
          req.on('end', () => resolve(h));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(session.alpnProtocol, 'h2');
      assert.equal((session.socket as tls.TLSSocket).getProtocol(), 'TLSv1.3');
      assert.equal(headers[':status'], 200);
    } finally {
      session.close();
    }
  });

  test('TLS below 1.2, weak ciphers and unknown server names are refused', async () => {
    const attempt = (options: tls.ConnectionOptions): Promise<string> =>
      new Promise((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port: ports.https, servername: 'localhost', ca, ...options }, () => {
          const p = s.getProtocol() ?? '?';
          s.destroy();
          resolve(`connected ${p}`);
        });
        s.on('error', (e) => resolve(`refused: ${e.message}`));
      });
    assert.match(await attempt({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), /^refused/);
    // TLS 1.2 with CBC suites this ECDSA certificate could serve: not offered. (Static-RSA suites
    // cannot be negotiated with an ECDSA certificate at all, so they would prove nothing here; the
    // configured list is checked suite by suite in the openssl test below.)
    assert.match(await attempt({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384' }), /^refused/);
    assert.equal(await attempt({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }), 'connected TLSv1.2');
    assert.equal(await attempt({}), 'connected TLSv1.3');
    // A name this server is not for: the handshake is rejected (no certificate shown).
    assert.match(await attempt({ servername: 'not-this-site.example', rejectUnauthorized: false }), /^refused/);
  });

  test('as an operator checks it: openssl s_client and curl see TLS 1.2/1.3 only, AEAD suites only, and HTTP/2', async () => {
    // The system's OpenSSL configuration (Debian: MinProtocol TLSv1.2, SECLEVEL=2) would stop the
    // clients from even offering what nginx must refuse; with an empty one and SECLEVEL=0 they
    // offer it, as a control server that accepts everything shows: each refusal is nginx's.
    const conf = join(dir, 'openssl-empty.cnf');
    writeFileSync(conf, '');
    const env = { ...process.env, OPENSSL_CONF: conf };
    const server = await startControlServer(join(dir, 'tls/fullchain.pem'), join(dir, 'tls/privkey.pem'), env);
    const control = server.port;
    try {
      const sClient = (port: number, args: string[]): { ok: boolean; protocol?: string; cipher?: string; output: string } => {
        const r = spawnSync(opensslBin!, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', join(dir, 'tls/fullchain.pem'), ...args], { input: '', env, encoding: 'utf8', timeout: 15_000 });
        const output = `${r.stdout}${r.stderr}`;
        // The session block names the protocol; with TLS 1.3 it may not come before the close,
        // but then "New, TLSv1.3, Cipher is ..." does (for 1.2 that line names the suite's version).
        const protocol = /^\s*Protocol\s*:\s*(\S+)/m.exec(output)?.[1] ?? /^New, (TLSv1\.3), Cipher is/m.exec(output)?.[1];
        const cipher = /Cipher is (\S+)/.exec(output)?.[1];
        const ok = r.status === 0 && cipher !== undefined && cipher !== '(NONE)';
        return { ok, ...(protocol ? { protocol } : {}), ...(cipher ? { cipher } : {}), output };
      };
      const legacy = ['-cipher', 'DEFAULT:@SECLEVEL=0'];
      for (const version of ['-tls1', '-tls1_1']) {
        assert.ok(sClient(control, [version, ...legacy]).ok, `the control server did not accept ${version}: the client never offered it`);
        const r = sClient(ports.https, [version, ...legacy]);
        assert.equal(r.ok, false, `nginx accepted ${version}: ${r.protocol} ${r.cipher}`);
      }
      for (const weak of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384']) {
        assert.ok(sClient(control, ['-tls1_2', '-cipher', `${weak}:@SECLEVEL=0`]).ok, `the control server did not accept ${weak}`);
        const r = sClient(ports.https, ['-tls1_2', '-cipher', `${weak}:@SECLEVEL=0`]);
        assert.equal(r.ok, false, `nginx accepted the weak suite ${weak}`);
      }
      for (const good of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
        const r = sClient(ports.https, ['-tls1_2', '-cipher', good]);
        assert.deepEqual([r.ok, r.protocol, r.cipher], [true, 'TLSv1.2', good], r.output);
      }
      const tls13 = sClient(ports.https, ['-tls1_3']);
      assert.deepEqual([tls13.ok, tls13.protocol], [true, 'TLSv1.3'], tls13.output);
      assert.match(tls13.output, /Verify return code: 0 \(ok\)/);

      // The configured suites, whatever the certificate: each is ECDHE key exchange with an AEAD cipher.
      const tlsConf = readFileSync(join(rendered.confDir, 'snippets/tls.conf'), 'utf8');
      const configured = /^ssl_ciphers ([^;]+);$/m.exec(tlsConf)![1]!;
      // (`openssl ciphers` appends OpenSSL's TLS 1.3 suites, all AEAD, which nginx uses as they are.)
      const suites = execFileSync(opensslBin!, ['ciphers', '-v', configured], { encoding: 'utf8', env }).trim().split('\n');
      const tls12 = suites.filter((line) => !/\sTLSv1\.3\s/.test(line));
      assert.equal(tls12.length, configured.split(':').length, suites.join('\n'));
      for (const suite of tls12) assert.match(suite, /\bKx=ECDH\b.*\bEnc=(AESGCM|CHACHA20\/POLY1305)\(\d+\)\s+Mac=AEAD$/, suite);
      for (const suite of suites) assert.match(suite, /Mac=AEAD$/, suite);

      // Not spawnSync: /health is answered by the cloud server in this very process.
      const curl = (port: number, args: string[]): Promise<{ status: number; out: string }> =>
        new Promise((resolve) => {
          const argv = ['-sS', '--max-time', '15', '--cacert', join(dir, 'tls/fullchain.pem'), '--resolve', `localhost:${port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{response_code}', ...args, `https://localhost:${port}/health`];
          execFile('curl', argv, { env, encoding: 'utf8' }, (error, stdout, stderr) => resolve({ status: error ? Number(error.code ?? -1) : 0, out: `${stdout}${stderr}` }));
        });
      assert.deepEqual(await curl(ports.https, ['--http2']), { status: 0, out: '2 200' });
      assert.deepEqual(await curl(ports.https, ['--http1.1', '--tlsv1.2', '--tls-max', '1.2']), { status: 0, out: '1.1 200' });
      const oldTls = ['--tlsv1.0', '--tls-max', '1.1', '--ciphers', 'DEFAULT:@SECLEVEL=0'];
      assert.equal((await curl(control, [...oldTls, '--http1.1'])).status, 0, 'the control server did not accept curl with TLS 1.1');
      const refused = await curl(ports.https, oldTls);
      assert.notEqual(refused.status, 0, `curl got through nginx with TLS < 1.2: ${refused.out}`);
    } finally {
      await server.stop();
    }
  });

  test('security headers are on every answer, once each (HSTS, nosniff, frame, referrer)', async () => {
    for (const path of ['/health', '/ollama/api/tags', '/no-such-page']) {
      const r = await httpsRequest({ port: ports.https, path, ca, headers: { authorization: `Bearer ${token}` } });
      for (const name of ['strict-transport-security', 'x-content-type-options', 'x-frame-options', 'referrer-policy']) {
        assert.equal(headerCount(r.rawHeaders, name), 1, `${path}: ${name} appears ${headerCount(r.rawHeaders, name)} times`);
      }
      assert.match(String(r.headers['strict-transport-security']), /^max-age=\d+/);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['server'], 'nginx', 'server_tokens off: no version');
    }
  });

  test('body limits: a large image body passes /ollama/, the configured limit answers 413, blobs have none', async () => {
    const before = await edgeCounts();
    // A chat request carrying a ~6 MiB base64 image: under the (test) 8m limit of /ollama/.
    const image = randomBytes(4.5 * 1024 * 1024).toString('base64');
    const chat = await httpsRequest({
      port: ports.https,
      path: '/ollama/api/chat',
      method: 'POST',
      ca,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'what is this', images: [image] }] }),
    });
    assert.equal(chat.status, 200, chat.body.slice(0, 300));
    // Over the limit: nginx itself answers 413.
    const tooBig = await httpsRequest({
      port: ports.https,
      path: '/ollama/api/chat',
      method: 'POST',
      ca,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': 12 * 1024 * 1024 },
      body: Buffer.alloc(12 * 1024 * 1024, 0x20),
    }).catch((e: Error) => ({ status: -1, body: e.message }));
    assert.equal(tooBig.status, 413);
    // A 24 MiB blob (3x the /ollama/ limit) streams through to the emulator, whole.
    const blob = randomBytes(24 * 1024 * 1024);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const upload = await httpsRequest({
      port: ports.https,
      path: `/ollama/api/blobs/${digest}`,
      method: 'POST',
      ca,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': blob.length },
      body: blob,
    });
    assert.equal(upload.status, 201, upload.body);
    const received = emulator.requests.findLast((r) => r.path === `/api/blobs/${digest}`)!;
    assert.equal(received.bodyBytes, blob.length);
    // Both large bodies were asked about and routed by the edge port (direct, or through for
    // the user's byte budget), never failed nginx's question: its location has no body limit of
    // its own (the server's 1m once made every larger body go through, uncounted).
    const after = await edgeCounts();
    const decided = after.direct - before.direct + Object.values(after.through).reduce((a, b) => a + b, 0) - Object.values(before.through).reduce((a, b) => a + b, 0);
    assert.equal(decided, 2, JSON.stringify({ before, after }));
    assert.ok(after.direct - before.direct >= 1, `the image chat went direct: ${JSON.stringify({ before, after })}`);
  });

  /** ctll_edge_routes_total by route and reason, and the api-backend relay's own bytes, now. */
  async function edgeCounts(): Promise<{ direct: number; through: Record<string, number>; relayedBytes: number }> {
    const routes = await cloud.metrics.edgeRoutes.get();
    const through: Record<string, number> = {};
    let direct = 0;
    for (const v of routes.values) {
      if (v.labels['route'] === 'direct') direct += v.value;
      else through[String(v.labels['reason'])] = (through[String(v.labels['reason'])] ?? 0) + v.value;
    }
    const bytes = await cloud.metrics.bytesRelayed.get();
    // Up and down: the relay's own bodies (the bridge's tunnel, spliced through, is `bridge`).
    return { direct, through, relayedBytes: bytes.values.filter((v) => v.labels['direction'] !== 'bridge').reduce((n, v) => n + v.value, 0) };
  }

  test('edge routing: signed-in requests go from nginx straight to the user\'s proxy, not through the api-backend\'s relay', async () => {
    const before = await edgeCounts();
    const auth = { authorization: `Bearer ${token}` };
    const tags = await httpsRequest({ port: ports.https, path: '/ollama/api/tags', ca, headers: auth });
    assert.equal(tags.status, 200, tags.body);
    assert.deepEqual((JSON.parse(tags.body) as { models: Array<{ name: string }> }).models.map((m) => m.name), emulator.models.list().map((m) => m.name));
    const generate = await httpsRequest({
      port: ports.https,
      path: '/ollama/api/generate',
      method: 'POST',
      ca,
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama3.2', prompt: 'hi', stream: false, options: { num_predict: 3 } }),
    });
    assert.equal(generate.status, 200, generate.body);
    assert.equal((JSON.parse(generate.body) as { response: string }).response, expectedText(3));
    const after = await edgeCounts();
    assert.equal(after.direct - before.direct, 2, JSON.stringify(after));
    // Not a byte of either crossed the api-backend's relay.
    assert.equal(after.relayedBytes, before.relayedBytes);
    // The proxy never saw the user's token: the emulator got neither it nor the proxy's secret.
    const last = emulator.requests.findLast((r) => r.path === '/api/generate')!;
    assert.equal(last.headers['authorization'], undefined);
  });

  test('edge routing: what it cannot send straight goes through the api-backend, whose answers are unchanged', async () => {
    const before = await edgeCounts();
    const bad = await httpsRequest({ port: ports.https, path: '/ollama/api/tags', ca, headers: { authorization: 'Bearer not-a-token' } });
    assert.equal(bad.status, 401, bad.body);
    assert.match(String(bad.headers['www-authenticate']), /^Bearer /);
    assert.ok((JSON.parse(bad.body) as { error?: string }).error, bad.body);
    const key = await httpsRequest({ port: ports.https, path: '/ollama/api/tags', ca, headers: { authorization: 'Bearer ctll_k1_notakey' } });
    assert.equal(key.status, 401, key.body);
    const notApi = await httpsRequest({ port: ports.https, path: '/ollama/health', ca, headers: { authorization: `Bearer ${token}` } });
    assert.equal(notApi.status, 404, notApi.body);
    assert.match(notApi.body, /not part of the Ollama API/);
    // A browser's origin (CORS_ORIGINS is * here): the api-backend adds the CORS answer.
    const browser = await httpsRequest({ port: ports.https, path: '/ollama/api/tags', ca, headers: { authorization: `Bearer ${token}`, origin: 'https://app.example.com' } });
    assert.equal(browser.status, 200, browser.body);
    assert.equal(browser.headers['access-control-allow-origin'], '*');
    // A chunked body has no length to take from the user's byte budget up front: the gate takes it.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', servername: 'localhost', port: ports.https, method: 'POST', path: '/ollama/api/generate', ca, agent: false, headers: { host: `localhost:${ports.https}`, authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.write('{"model":"llama3.2","prompt":"hi",');
      req.end('"stream":false,"options":{"num_predict":2}}');
    });
    assert.equal(chunked.status, 200, chunked.body);
    assert.equal((JSON.parse(chunked.body) as { response: string }).response, expectedText(2));
    const after = await edgeCounts();
    const grew = (reason: string): number => (after.through[reason] ?? 0) - (before.through[reason] ?? 0);
    assert.deepEqual(
      { credential: grew('credential'), key: grew('client-key'), api: grew('not-ollama-api'), cors: grew('cors'), body: grew('body'), direct: after.direct - before.direct },
      { credential: 1, key: 1, api: 1, cors: 1, body: 1, direct: 0 },
      JSON.stringify(after),
    );
    assert.ok(after.relayedBytes > before.relayedBytes, 'the chunked body and the answers crossed the api-backend');
  });

  test('edge routing: a client key goes straight to the proxy once the proxy has accepted it; a wrong one goes through and is counted', async () => {
    const ask = (key: string): Promise<{ status: number; body: string }> => httpsRequest({ port: ports.https, path: '/ollama/api/tags', ca, headers: { authorization: `Bearer ${key}` } });
    const before = await edgeCounts();
    // The key set reaches the proxy as the bridge connects (long before this test); a few tries
    // at most, each refusal counting against this address's failure limit.
    let first = await ask(clientKey);
    for (let i = 0; first.status === 401 && i < 3; i++) {
      await new Promise((r) => setTimeout(r, 500));
      first = await ask(clientKey);
    }
    assert.equal(first.status, 200, first.body);
    const seen = await edgeCounts();
    assert.ok((seen.through['client-key'] ?? 0) > (before.through['client-key'] ?? 0), 'the first use went through the api-backend');
    assert.equal(seen.direct, before.direct);
    const second = await ask(clientKey);
    assert.equal(second.status, 200, second.body);
    assert.deepEqual((JSON.parse(second.body) as { models: Array<{ name: string }> }).models.map((m) => m.name), emulator.models.list().map((m) => m.name));
    const after = await edgeCounts();
    assert.equal(after.direct - seen.direct, 1, 'accepted: the next request went straight to the proxy');
    assert.equal(after.relayedBytes, seen.relayedBytes, 'and not through the api-backend\'s relay');
    // The same routing part with another secret: never accepted, so through, refused and counted.
    const failures = (await cloud.metrics.authFailures.get()).values.reduce((n, v) => n + v.value, 0);
    const forged = await ask(reforge(clientKey, { secret: randomBytes(32) }));
    assert.equal(forged.status, 401, forged.body);
    assert.equal(emulator.requests.filter((r) => r.headers['authorization'] !== undefined).length, 0, 'no credential reached Ollama');
    assert.ok((await cloud.metrics.authFailures.get()).values.reduce((n, v) => n + v.value, 0) > failures, 'the wrong key counted as a failure');
    const last = await edgeCounts();
    assert.equal(last.direct, after.direct, 'the wrong key did not go straight');
  });

  test('edge routing: with the api-backend\'s edge port closed, nginx sends everything through the api-backend', async () => {
    const closedDir = join(dir, 'edge-closed');
    const closedPorts = { https: await freePort(), http: await freePort(), health: await freePort() };
    const closed = await renderNginx(closedDir, {
      ports: closedPorts,
      upstreamPort: Number(new URL(cloud.url).port),
      edgePort: await freePort(),
      cert: join(dir, 'tls/fullchain.pem'),
      key: join(dir, 'tls/privkey.pem'),
      acmeRoot,
    });
    const other = await startNginx(nginxBin!, closed, closedPorts.health);
    try {
      const before = await edgeCounts();
      const tags = await httpsRequest({ port: closedPorts.https, path: '/ollama/api/tags', ca, headers: { authorization: `Bearer ${token}` } });
      assert.equal(tags.status, 200, tags.body);
      assert.ok((JSON.parse(tags.body) as { models: unknown[] }).models.length > 0);
      const after = await edgeCounts();
      assert.equal(after.direct, before.direct);
      assert.ok(after.relayedBytes > before.relayedBytes);
      // A bridge too: through the api-backend's splice, which counts and audits it itself.
      const t = await signIn(`edge-closed-${randomBytes(3).toString('hex')}`);
      const books = await bridgeBooks();
      const b = await openBridgeSocket(closedPorts.https, t);
      assert.ok(b.ws, `${b.status} ${b.body}`);
      await waitUntil(() => auditOf(userOf(t), 'bridge.connect').length === 1, 'the spliced connect is audited', 10_000);
      assert.equal((await bridgeBooks()).direct, books.direct);
      assert.equal((await bridgeBooks()).gauge, books.gauge + 1);
      b.ws.close();
      await waitUntil(() => auditOf(userOf(t), 'bridge.disconnect').length === 1, 'the spliced disconnect is audited', 10_000);
    } finally {
      await other.stop();
    }
  });

  test('edge routing: a proxy that does not answer where the api-backend said gets the api-backend\'s answer for it, from nginx', async () => {
    // A stand-in for the edge port that sends every request to a port nobody listens on: the
    // moment between a proxy's stop and the api-backend's knowing it.
    const dead = await freePort();
    const fakeEdge = http.createServer((_req, res) => {
      res.writeHead(204, { [UPSTREAM_HEADER]: `127.0.0.1:${dead}`, [UPSTREAM_PATH_HEADER]: '/api/tags', [UPSTREAM_AUTHORIZATION_HEADER]: 'Bearer not-used' });
      res.end();
    });
    await new Promise<void>((resolve) => fakeEdge.listen(0, '127.0.0.1', resolve));
    const fakeDir = join(dir, 'edge-dead-proxy');
    const fakePorts = { https: await freePort(), http: await freePort(), health: await freePort() };
    const rendered = await renderNginx(fakeDir, {
      ports: fakePorts,
      upstreamPort: Number(new URL(cloud.url).port),
      edgePort: (fakeEdge.address() as { port: number }).port,
      cert: join(dir, 'tls/fullchain.pem'),
      key: join(dir, 'tls/privkey.pem'),
      acmeRoot,
    });
    const other = await startNginx(nginxBin!, rendered, fakePorts.health);
    try {
      const r = await httpsRequest({ port: fakePorts.https, path: '/ollama/api/tags', ca, headers: { authorization: `Bearer ${token}` } });
      assert.equal(r.status, 502, r.body);
      assert.equal(r.headers['x-cloudtolocalllm-refusal'], 'proxy-unreachable');
      assert.equal(r.headers['retry-after'], '2');
      assert.equal(r.headers['content-type'], 'application/json');
      assert.match((JSON.parse(r.body) as { error: string }).error, /your cloud proxy did not answer/);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', 'the security headers too');
    } finally {
      await other.stop();
      fakeEdge.close();
    }
  });

  test('the rendered production defaults: 100m on /ollama/, unlimited blobs, streams and the bridge with >= 1 h timeouts', async () => {
    const prodDir = join(dir, 'prod-render');
    const prod = await renderNginx(prodDir, { ports, upstreamPort: 8080, cert: join(dir, 'tls/fullchain.pem'), key: join(dir, 'tls/privkey.pem'), acmeRoot });
    const site = readFileSync(join(prod.confDir, 'conf.d/cloudtolocalllm.conf'), 'utf8');
    const streaming = readFileSync(join(prod.confDir, 'snippets/streaming.conf'), 'utf8');
    const edge = readFileSync(join(prod.confDir, 'snippets/edge-route.conf'), 'utf8');
    const tlsConf = readFileSync(join(prod.confDir, 'snippets/tls.conf'), 'utf8');
    const block = (name: string): string => {
      const start = site.indexOf(name);
      assert.ok(start >= 0, `no ${name}`);
      return site.slice(start, site.indexOf('\n    }', start));
    };
    assert.match(block('location /ollama/ {'), /client_max_body_size 100m;/);
    assert.match(block('location ^~ /ollama/api/blobs/ {'), /client_max_body_size 0;/);
    // Edge-routed: to the proxy (edge-route.conf) or through the api-backend (the named
    // locations), each way streaming, with the same body limits.
    for (const name of ['location /ollama/ {', 'location ^~ /ollama/api/blobs/ {']) assert.match(block(name), /include snippets\/edge-route\.conf;/, name);
    assert.match(block('location @ctll_api_ollama {'), /client_max_body_size 100m;/);
    assert.match(block('location @ctll_api_blobs {'), /client_max_body_size 0;/);
    // nginx's own answer when the proxy it was sent to does not answer: the api-backend's code,
    // and the security headers (an add_header of its own would drop the inherited ones).
    assert.match(block('location @ctll_proxy_unreachable {'), /include snippets\/security-headers\.conf;[\s\S]*X-CloudToLocalLLM-Refusal proxy-unreachable/);
    assert.match(edge, /^include snippets\/streaming\.conf;$/m);
    assert.match(edge, /^client_body_timeout 60s;$/m);
    // The edge port's contract (server/src/api/edge-route.ts), as nginx spells it.
    assert.ok(site.includes(`proxy_pass http://ctll_edge${EDGE_ROUTE_PATH};`), 'the edge route path');
    for (const [header, variable] of [[ORIGINAL_URI_HEADER, '$request_uri'], [ORIGINAL_LENGTH_HEADER, '$http_content_length'], [ORIGINAL_ENCODING_HEADER, '$http_transfer_encoding']] as const) {
      assert.match(site, new RegExp(`proxy_set_header ${header} \\${variable};`, 'i'), header);
    }
    for (const header of [UPSTREAM_HEADER, UPSTREAM_PATH_HEADER, UPSTREAM_AUTHORIZATION_HEADER, UPSTREAM_CLIENT_KEY_HEADER]) assert.ok(edge.includes(`$upstream_http_${header.replace(/-/g, '_')};`), header);
    for (const name of ['location @ctll_api_ollama {', 'location @ctll_api_blobs {', 'location = /ws/bridge {']) {
      assert.match(block(name), /include snippets\/streaming\.conf;/, name);
      assert.match(block(name), /client_body_timeout 3600s;/, name);
    }
    assert.match(block('location = /ws/bridge {'), /proxy_set_header Upgrade \$http_upgrade;/);
    for (const directive of ['proxy_buffering off;', 'proxy_request_buffering off;', 'gzip off;', 'proxy_read_timeout 3600s;', 'proxy_send_timeout 3600s;']) {
      assert.ok(streaming.includes(directive), `streaming.conf lacks ${directive}`);
    }
    assert.match(tlsConf, /^ssl_protocols TLSv1\.2 TLSv1\.3;$/m);
    // Logs go to the container's stdout and stderr, so Docker's rotation bounds them (no file of its
    // own): the render script's defaults, as the deploy script uses them (the harness above points
    // them at files of the test).
    const defaults = join(dir, 'default-render');
    await run(join(ROOT, 'scripts/deploy/render-nginx-conf.sh'), ['--out', defaults, '--server-name', 'localhost']);
    const main = readFileSync(join(defaults, 'nginx.conf'), 'utf8');
    assert.match(main, /^\s*access_log \/dev\/stdout ctll_json;$/m);
    assert.match(main, /^error_log stderr warn;$/m);
    assert.match(site, /listen 127\.0\.0\.1:\d+ ssl http2;/);
    assert.match(site, /location \^~ \/\.well-known\/acme-challenge\/ \{/);
    // And nginx itself accepts it.
    execFileSync(nginxBin!, ['-t', '-q', '-p', prod.runDir, '-c', prod.conf]);
  });

  test('plain HTTP serves only the ACME challenge and redirects everything else to HTTPS', async () => {
    mkdirSync(join(acmeRoot, '.well-known/acme-challenge'), { recursive: true });
    writeFileSync(join(acmeRoot, '.well-known/acme-challenge/test-token'), 'test-token.key-authorization');
    const get = (path: string): Promise<{ status: number; body: string; location?: string }> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: ports.http, path, headers: { host: 'localhost' }, agent: false }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers.location ? { location: res.headers.location } : {}) }));
          })
          .on('error', reject);
      });
    const challenge = await get('/.well-known/acme-challenge/test-token');
    assert.equal(challenge.status, 200);
    assert.equal(challenge.body, 'test-token.key-authorization');
    assert.equal((await get('/.well-known/acme-challenge/nothing')).status, 404);
    const other = await get('/ollama/api/tags?x=1');
    assert.equal(other.status, 301);
    assert.equal(other.location, `https://localhost:${ports.https}/ollama/api/tags?x=1`);
  });

  test('the access log holds paths and statuses, never tokens or query strings', async () => {
    await httpsRequest({ port: ports.https, path: '/health?secret=do-not-log', ca, headers: { authorization: `Bearer ${token}` } });
    // Lines are written when a request ends: wait for ours.
    let log = '';
    for (const deadline = Date.now() + 30_000; !log.includes('"path":"/health"') && Date.now() < deadline; ) {
      log = readFileSync(join(rendered.runDir, 'access.log'), 'utf8');
      if (!log.includes('"path":"/health"')) await new Promise((r) => setTimeout(r, 50));
    }
    const lines = log.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l['path'] === '/ollama/api/generate' && l['status'] === 200));
    assert.ok(!log.includes(token.slice(-20)), 'a token appears in the access log');
    assert.ok(!log.includes('do-not-log'), 'a query string appears in the access log');
  });

  test(
    'a stream lasting over 5 minutes, with 76 s of silence between tokens, is not cut',
    { skip: LONG ? false : 'takes about 5 min 5 s; runs with CTLL_LONG_TESTS=1 or CI=true', timeout: 420_000 },
    async (t) => {
      // 5 tokens, 76 s apart: 304 s. Each silence is longer than nginx's default
      // proxy_read_timeout (60 s), which would cut the answer if the configuration did not set it.
      emulator.set({ tokenIntervalMs: 76_000 });
      const started = Date.now();
      try {
        const result = await httpsStream({
          port: ports.https,
          path: '/ollama/api/generate',
          body: { model: 'llama3.2', prompt: 'a long think', options: { num_predict: 5 } },
          token,
          ca,
        });
        const seconds = (Date.now() - started) / 1000;
        t.diagnostic(`long stream: ${seconds.toFixed(1)} s, ${result.lines.length} lines`);
        if (result.error) t.diagnostic(`cut: ${result.error}; lines: ${result.lines.map((l) => l.line).join(' | ')}`);
        assert.equal(result.status, 200);
        assert.equal(result.error, undefined);
        assert.equal(textOf(result), expectedText(5));
        assert.ok(seconds >= 300, `the stream lasted only ${seconds} s`);
      } finally {
        emulator.set({ tokenIntervalMs: 200 });
      }
    },
  );
});
