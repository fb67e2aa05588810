/** Malformed and hostile input, from the internet side and from a hostile proxy: clear errors, no crash. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket, { WebSocketServer, createWebSocketStream } from 'ws';
import { BRIDGE_PATH, subprotocolFor, TUNNEL_AUTHORITY, TUNNEL_PROTOCOL_VERSION } from '@cloudtolocalllm/bridge/connection/protocol';
import { startStack, waitForState, waitUntil, type Stack } from './harness.js';

/** Sends raw bytes to host:port and returns everything the server answers before closing. */
function rawExchange(port: number, request: string | Buffer, timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (answer += d));
    socket.on('end', () => resolve(answer));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      resolve(answer);
    });
    socket.write(request);
  });
}

function statusOf(answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
}

function errorOf(answer: string): string {
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  const json = body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1);
  return (JSON.parse(json) as { error: string }).error;
}

describe('hostile input from the internet side', () => {
  let stack: Stack;
  let port: number;
  before(async () => {
    stack = await startStack();
    port = Number(new URL(stack.url).port);
  });
  after(() => stack.close());

  const get = (path: string, extra = ''): Promise<string> =>
    rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: cloud.example\r\nAuthorization: Bearer ${stack.token}\r\n${extra}Connection: close\r\n\r\n`);

  test('traversal, encoded traversal and non-API paths are refused by the bridge, and Ollama sees nothing', async () => {
    const seen = stack.emulator.requests.length;
    for (const [path, status, pattern] of [
      ['/api/../../etc/passwd', 400, /traversal/],
      ['/api/%2e%2e/%2e%2e/etc/passwd', 400, /traversal/],
      ['/api/%252e%252e/x', 400, /double-encoded/],
      ['/admin', 404, /not part of the Ollama API/],
      ['/api//tags', 400, /empty segment/],
    ] as const) {
      const answer = await get(path);
      assert.equal(statusOf(answer), status, `${path}: ${answer.slice(0, 200)}`);
      assert.match(errorOf(answer), pattern, path);
    }
    assert.equal(stack.emulator.requests.length, seen, 'none of them reached Ollama');
  });

  test('an absolute-form request target cannot choose another host', async () => {
    const seen = stack.emulator.requests.length;
    const answer = await get('http://169.254.169.254/latest/meta-data');
    assert.equal(statusOf(answer), 400);
    assert.match(errorOf(answer), /absolute-form/);
    assert.equal(stack.emulator.requests.length, seen);
  });

  test('a refused upload is answered at once, without the body crossing the tunnel', async () => {
    const bytesBefore = stack.bridge.counters.bytesIn;
    const size = 256 * 1024 * 1024;
    let sentAtAnswer = 0;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${stack.url}/api/blobs/sha256:${'c'.repeat(64)}`, {
        method: 'POST',
        headers: { ...stack.auth, 'content-length': size },
      });
      req.on('response', (r) => {
        sentAtAnswer = sent;
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (d: string) => (body += d));
        r.on('end', () => {
          req.destroy();
          resolve({ status: r.statusCode ?? 0, body });
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : reject(e)));
      const chunk = Buffer.alloc(1 << 20);
      let sent = 0;
      const pump = (): void => {
        while (sent < size && !req.destroyed) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    assert.equal(res.status, 403);
    assert.match(res.body, /Allow from the cloud: blobs/);
    assert.ok(sentAtAnswer < size, `answered after ${(sentAtAnswer / 2 ** 20).toFixed(0)} of 256 MiB: without waiting for the body`);
    const crossed = stack.bridge.counters.bytesIn - bytesBefore;
    assert.ok(crossed < 64 * 1024 * 1024, `${(crossed / 2 ** 20).toFixed(1)} MiB of the 256 MiB body crossed the tunnel`);
  });

  test('a wrong method gets 405 with the allowed methods', async () => {
    const res = await fetch(`${stack.url}/api/chat`, { headers: stack.auth });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'POST');
    assert.match(((await res.json()) as { error: string }).error, /use POST/);
  });

  test('huge headers get 431 with a JSON explanation, and the proxy keeps serving', async () => {
    const answer = await get('/api/tags', `X-Big: ${'a'.repeat(64 * 1024)}\r\n`);
    assert.equal(statusOf(answer), 431);
    assert.match(errorOf(answer), /larger than the limit of 16384 bytes/);
    const res = await fetch(`${stack.url}/api/tags`, { headers: stack.auth });
    assert.equal(res.status, 200);
  });

  test('bytes that are not HTTP get 400, and the proxy keeps serving', async () => {
    const answer = await rawExchange(port, randomBytes(512));
    assert.equal(statusOf(answer), 400);
    assert.match(errorOf(answer), /not valid HTTP/);
    assert.equal((await fetch(`${stack.url}/health`)).status, 200);
  });

  test('the bridge endpoint explains itself to a plain request and to a WebSocket on another path', async () => {
    const res = await fetch(`${stack.url}${BRIDGE_PATH}`);
    assert.equal(res.status, 426);
    const ws = new WebSocket(`${stack.url.replace('http', 'ws')}/elsewhere`, [subprotocolFor(TUNNEL_PROTOCOL_VERSION)], {
      headers: stack.auth,
    });
    const status = await new Promise<number>((resolve) => ws.on('unexpected-response', (_q, r) => resolve(r.statusCode ?? 0)));
    assert.equal(status, 404);
  });

  test('garbage on the bridge WebSocket drops that connection only; the proxy survives and a good bridge works', async () => {
    await stack.bridge.stop();
    await waitUntil(() => !stack.proxy.links.connected, 'the proxy saw the bridge leave');
    const ws = new WebSocket(`${stack.url.replace('http', 'ws')}${BRIDGE_PATH}`, [subprotocolFor(TUNNEL_PROTOCOL_VERSION)], {
      headers: stack.auth,
    });
    await new Promise((r) => ws.on('open', r));
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    ws.send(randomBytes(4096));
    ws.send('not http/2 at all');
    assert.ok((await closed) > 0, 'the proxy closed the garbage connection');
    assert.equal((await fetch(`${stack.url}/health`)).status, 200);
    const good = stack.newBridge();
    good.start();
    await waitForState(good, 'connected');
    await waitUntil(() => stack.proxy.links.connected, 'the good bridge is in');
    assert.equal((await fetch(`${stack.url}/api/version`, { headers: stack.auth })).status, 200);
  });
});

describe('a hostile proxy cannot make the bridge reach anything but the Ollama API', () => {
  let stack: Stack;
  let wss: WebSocketServer;
  let hostileUrl: string;
  let onBridge: (ws: WebSocket) => void = () => {};
  before(async () => {
    stack = await startStack({ noBridge: true });
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (p) => [...p][0] ?? false });
    await new Promise((r) => wss.on('listening', r));
    hostileUrl = `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}${BRIDGE_PATH}`;
    wss.on('connection', (ws) => onBridge(ws));
  });
  after(async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    await stack.close();
  });

  test('requests for other hosts, schemes or absolute targets are refused before the network', async () => {
    const sessionReady = new Promise<http2.ClientHttp2Session>((resolve) => {
      onBridge = (ws) => {
        const duplex = createWebSocketStream(ws);
        resolve(http2.connect(`http://${TUNNEL_AUTHORITY}`, { createConnection: () => duplex }));
      };
    });
    const bridge = stack.newBridge({ proxyUrl: hostileUrl });
    bridge.start();
    const session = await sessionReady;
    const ask = (headers: http2.OutgoingHttpHeaders): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = session.request({ ':method': 'GET', ':scheme': 'http', ':authority': TUNNEL_AUTHORITY, ...headers });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end();
      });
    const seen = stack.emulator.requests.length;
    const cases: Array<[http2.OutgoingHttpHeaders, number, RegExp]> = [
      [{ ':path': '/api/tags', ':authority': 'evil.example:22' }, 421, /host "evil.example:22" is refused/],
      [{ ':path': '/api/tags', ':authority': '127.0.0.1:22' }, 421, /is refused/],
      [{ ':path': '/api/tags', ':scheme': 'gopher' }, 400, /scheme "gopher"/],
      [{ ':path': '/../../etc/passwd' }, 400, /traversal/],
      [{ ':path': '/api/pull', ':method': 'POST' }, 403, /Allow from the cloud: pull/],
      [{ ':path': '/api/delete', ':method': 'DELETE' }, 403, /Allow from the cloud: delete/],
    ];
    for (const [headers, status, pattern] of cases) {
      const answer = await ask(headers);
      assert.equal(answer.status, status, JSON.stringify(headers));
      assert.match((JSON.parse(answer.body) as { error: string }).error, pattern);
    }
    assert.equal(stack.emulator.requests.length, seen, 'nothing reached Ollama');
    const ok = await ask({ ':path': '/api/version' });
    assert.equal(ok.status, 200, 'a proper request still works on the same connection');
    assert.equal(bridge.counters.refused, cases.length);
    session.destroy();
    await bridge.stop();
  });

  test('garbage instead of HTTP/2 ends the connection with a reason, and the bridge retries calmly', async () => {
    const connections: number[] = [];
    onBridge = (ws) => {
      connections.push(performance.now());
      ws.send(randomBytes(1024));
    };
    const lost: Array<{ at: number; status: import('@cloudtolocalllm/bridge/supervisor/status').BridgeStatus }> = [];
    const bridge = stack.newBridge({ proxyUrl: hostileUrl });
    bridge.on('status', (s) => void (s.state === 'disconnected' && lost.push({ at: performance.now(), status: s })));
    bridge.start();
    await waitUntil(() => lost.length >= 3, 'three dropped connections', 60_000);
    await bridge.stop();
    for (const { status } of lost) {
      assert.equal(status.code, 'protocol');
      assert.match(status.reason ?? '', /^HTTP\/2 on the tunnel failed: /);
      assert.ok((status.retryInMs ?? 0) > 0, 'a retry after a delay');
    }
    // One connection per planned retry, each after at least its delay: no loop however fast the machine.
    assert.ok(connections.length >= 3 && connections.length <= lost.length + 1, `${connections.length} connections for ${lost.length} drops`);
    for (let i = 0; i < 2; i++) {
      const waited = connections[i + 1]! - lost[i]!.at;
      assert.ok(waited >= lost[i]!.status.retryInMs! - 1, `connection ${i + 2} came ${waited} ms after a planned ${lost[i]!.status.retryInMs} ms`);
    }
  });
});
