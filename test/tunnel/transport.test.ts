/**
 * The tunnel's two transports (issue 12, bridge/connection/protocol.ts): HTTP/2 straight on the
 * socket by default, WebSocket where the proxy or a middlebox takes nothing else, chosen at
 * connect and kept for the proxy's URL.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { dialTunnel } from '@cloudtolocalllm/bridge/connection/tunnel-dialer';
import { BRIDGE_PATH } from '@cloudtolocalllm/bridge/connection/protocol';
import { FAST_HEARTBEAT, readNdjson, startStack, waitForState, waitUntil } from './harness.js';

async function generate(url: string, auth: Record<string, string>): Promise<string> {
  const res = await fetch(`${url}/api/generate`, { method: 'POST', headers: auth, body: JSON.stringify({ model: 'llama3.2', prompt: 'hi' }) });
  assert.equal(res.status, 200);
  const lines = (await readNdjson(res)) as Array<{ response?: string; done?: boolean }>;
  assert.equal(lines.at(-1)?.done, true, 'the stream ends with its done line');
  return lines.map((l) => l.response ?? '').join('');
}

/** The proxy's count of bridge upgrades it answered with `result`. */
async function upgrades(url: string, result: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`ctll_proxy_bridge_connections_total\\{result="${result}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

describe('tunnel transports', () => {
  test('by default HTTP/2 runs on the socket: the bridge, the proxy and a streamed answer say so', async () => {
    const stack = await startStack();
    try {
      assert.equal(stack.bridge.status.transport, 'h2');
      assert.deepEqual(stack.proxy.computers().map((c) => c.transport), ['h2']);
      assert.ok((await generate(stack.url, stack.auth)).length > 0);
      // Many streams at once on the one connection.
      const answers = await Promise.all(Array.from({ length: 20 }, () => generate(stack.url, stack.auth)));
      assert.equal(answers.filter((a) => a.length > 0).length, 20);
    } finally {
      await stack.close();
    }
  });

  test('a proxy that takes only WebSocket: the bridge falls back in the same dial, and keeps to WebSocket for that URL', async () => {
    const stack = await startStack({ proxy: { transports: ['websocket'] } });
    try {
      assert.equal(stack.bridge.status.transport, 'websocket');
      assert.deepEqual(stack.proxy.computers().map((c) => c.transport), ['websocket']);
      assert.equal(await upgrades(stack.url, 'wrong-upgrade'), 1, 'one h2 attempt, refused');
      assert.ok((await generate(stack.url, stack.auth)).length > 0);
      // The proxy drops the link: the bridge reconnects straight over WebSocket.
      stack.proxy.links.close('test: reconnect');
      await waitForState(stack.bridge, 'disconnected');
      await waitForState(stack.bridge, 'connected');
      await waitUntil(() => stack.proxy.links.connected, 'the bridge is back');
      assert.equal(stack.bridge.status.transport, 'websocket');
      assert.equal(await upgrades(stack.url, 'wrong-upgrade'), 1, 'no second h2 attempt');
      assert.equal(await upgrades(stack.url, 'accepted'), 2);
    } finally {
      await stack.close();
    }
  });

  test('--transport h2 against that proxy: refused, and the reason names the way out', async () => {
    const stack = await startStack({ noBridge: true, proxy: { transports: ['websocket'] } });
    const bridge = stack.newBridge({ transport: 'h2' });
    try {
      bridge.start();
      const refused = await waitForState(bridge, 'error');
      assert.equal(refused.code, 'refused');
      assert.match(refused.reason ?? '', /did not take the HTTP\/2 transport .*--transport websocket/);
      assert.equal(stack.proxy.links.connected, false);
    } finally {
      await stack.close();
    }
  });

  test('--transport websocket: only WebSocket is asked for', async () => {
    const stack = await startStack({ bridge: { transport: 'websocket' } });
    try {
      assert.equal(stack.bridge.status.transport, 'websocket');
      assert.equal(await upgrades(stack.url, 'wrong-upgrade'), 0);
      assert.ok((await generate(stack.url, stack.auth)).length > 0);
    } finally {
      await stack.close();
    }
  });

  test('a middlebox that swallows an upgrade it does not know: WebSocket after the handshake timeout', async () => {
    const stack = await startStack({ noBridge: true });
    // Passes everything on, except a request for the h2 upgrade, which it holds unanswered.
    const held: net.Socket[] = [];
    const middlebox = net.createServer((client) => {
      client.once('data', (first) => {
        if (/upgrade: cloudtolocalllm-h2/i.test(first.toString('latin1'))) return void held.push(client);
        const upstream = net.connect(Number(new URL(stack.url).port), '127.0.0.1');
        upstream.write(first);
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      });
    });
    await new Promise<void>((r) => middlebox.listen(0, '127.0.0.1', r));
    const proxyUrl = `ws://127.0.0.1:${(middlebox.address() as net.AddressInfo).port}${BRIDGE_PATH}`;
    try {
      const started = Date.now();
      const connection = await dialTunnel({ proxyUrl, token: stack.token, heartbeat: FAST_HEARTBEAT, handshakeTimeoutMs: 400, onStream: (s) => s.respond({ ':status': 204 }, { endStream: true }) });
      assert.equal(connection.transport, 'websocket');
      assert.ok(Date.now() - started >= 400, 'it waited for the h2 answer first');
      assert.equal(held.length, 1);
      await waitUntil(() => stack.proxy.links.connected, 'the proxy has the bridge');
      connection.close('test done');
      assert.equal((await connection.closed).code, 'closed');
    } finally {
      for (const s of held) s.destroy();
      middlebox.close();
      await stack.close();
    }
  });

  test('the bridge closing says so in its GOAWAY, and the proxy logs the reason', async () => {
    const stack = await startStack({ noBridge: true });
    try {
      const connection = await dialTunnel({ proxyUrl: stack.url + BRIDGE_PATH, token: stack.token, heartbeat: FAST_HEARTBEAT, onStream: () => {} });
      assert.equal(connection.transport, 'h2');
      await waitUntil(() => stack.proxy.links.connected, 'the proxy has the bridge');
      const reasons: string[] = [];
      stack.proxy.links.on('disconnected', (_name, reason) => reasons.push(reason));
      connection.close('laptop going to sleep');
      await waitUntil(() => reasons.length > 0, 'the proxy saw the bridge leave');
      assert.deepEqual(reasons, ['the bridge disconnected (code 1000: laptop going to sleep)']);
    } finally {
      await stack.close();
    }
  });
});
