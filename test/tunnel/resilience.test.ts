/** What happens when parts of the path fail: the bridge dies, the proxy restarts, the line goes dead. */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Ollama } from 'ollama';
import { BRIDGE_PATH } from '../../bridge/connection/protocol.js';
import { StaticTokenAuthenticator } from '../../server/src/proxy/auth.js';
import { StreamingProxy } from '../../server/src/proxy/streaming-proxy.js';
import { FAST_HEARTBEAT, startStack, waitForState, waitUntil, type Stack } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const stacks: Stack[] = [];
const open = async (...args: Parameters<typeof startStack>): Promise<Stack> => {
  const s = await startStack(...args);
  stacks.push(s);
  return s;
};
after(async () => {
  await Promise.all(stacks.map((s) => s.close()));
});

function spawnBridgeCli(stack: Stack): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', 'tsx', 'bridge/cli.ts', '--proxy-url', stack.url + BRIDGE_PATH, '--ollama-url', stack.emulator.url, '--json'],
    { cwd: ROOT, env: { ...process.env, CLOUDTOLOCALLLM_TOKEN: stack.token }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

describe('failures along the path', () => {
  test('no bridge connected: 503 at once, in Ollama\'s error shape', async () => {
    const stack = await open({ noBridge: true });
    const started = Date.now();
    const res = await fetch(`${stack.url}/api/tags`, { headers: stack.auth });
    const elapsed = Date.now() - started;
    assert.equal(res.status, 503);
    const body = (await res.json()) as { error: string };
    assert.match(body.error, /your computer is not connected/);
    assert.ok(elapsed < 2_000, `answered in ${elapsed} ms, without waiting for a bridge`);
    const ollama = new Ollama({ host: stack.url, headers: stack.auth });
    await assert.rejects(ollama.list(), (e: Error & { status_code?: number }) => e.status_code === 503 && /not connected/.test(e.message));
  });

  test('the bridge process killed mid-stream: the client sees an error, never a clean end', async () => {
    const stack = await open({ noBridge: true, emulator: { tokenIntervalMs: 30 } });
    const child = spawnBridgeCli(stack);
    try {
      await waitUntil(() => stack.proxy.link.connected, 'the bridge CLI connected', 15_000);
      const res = await fetch(`${stack.url}/api/generate`, {
        method: 'POST',
        headers: stack.auth,
        body: JSON.stringify({ model: 'llama3.2', prompt: 'x', options: { num_predict: 500 } }),
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let text = '';
      const decoder = new TextDecoder();
      while (text.split('\n').length < 4) {
        const { value } = await reader.read();
        text += decoder.decode(value, { stream: true });
      }
      child.kill('SIGKILL');
      let failed: unknown;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
        }
      } catch (e) {
        failed = e;
      }
      assert.ok(failed, 'reading the body failed: the chunked body was cut, not ended');
      const lines = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { done?: boolean; error?: string });
      assert.ok(!lines.some((l) => l.done), 'no "done" line pretends the answer is complete');
      assert.match(lines.at(-1)?.error ?? '', /connection to your computer was lost mid-stream/);
      await stack.emulator.waitFor((r) => r.path === '/api/generate' && r.aborted, 5_000);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('the bridge reconnects after the proxy restarts', async () => {
    const stack = await open();
    const port = Number(new URL(stack.url).port);
    await stack.proxy.close();
    await waitForState(stack.bridge, 'disconnected');
    const second = new StreamingProxy({ authenticator: new StaticTokenAuthenticator('test-user', stack.token), heartbeat: FAST_HEARTBEAT });
    await second.listen(port);
    try {
      await waitForState(stack.bridge, 'connected', 10_000);
      await waitUntil(() => second.link.connected, 'the new proxy sees the bridge');
      const res = await fetch(`${stack.url}/api/version`, { headers: stack.auth });
      assert.equal(res.status, 200);
    } finally {
      await second.close();
    }
  });

  test('a dead line (no FIN, no RST) is detected by heartbeats on both sides', async () => {
    const stack = await open({ noBridge: true });
    // A TCP relay that can freeze: it keeps both sockets open but stops moving bytes.
    let frozen = false;
    const pairs: Array<[net.Socket, net.Socket]> = [];
    const relay = net.createServer((client) => {
      const upstream = net.connect(Number(new URL(stack.url).port), '127.0.0.1');
      pairs.push([client, upstream]);
      client.on('data', (d) => frozen || upstream.write(d));
      upstream.on('data', (d) => frozen || client.write(d));
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const relayPort = (relay.address() as net.AddressInfo).port;
    const bridge = stack.newBridge({ proxyUrl: `ws://127.0.0.1:${relayPort}${BRIDGE_PATH}` });
    try {
      bridge.start();
      await waitForState(bridge, 'connected');
      await waitUntil(() => stack.proxy.link.connected, 'the proxy sees the bridge');
      frozen = true;
      const lost = await waitForState(bridge, 'disconnected', 6_000);
      assert.equal(lost.code, 'heartbeat-timeout');
      await waitUntil(() => !stack.proxy.link.connected, 'the proxy dropped the dead bridge', 6_000);
      frozen = false;
      await waitForState(bridge, 'connected', 5_000);
    } finally {
      await bridge.stop();
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      relay.close();
    }
  });

  test('a second bridge of the same user replaces the first, which stops instead of fighting back', async () => {
    const stack = await open();
    const second = stack.newBridge();
    second.start();
    await waitForState(second, 'connected');
    const first = await waitForState(stack.bridge, 'disconnected');
    assert.equal(first.code, 'replaced');
    assert.equal(first.retryInMs, undefined, 'the replaced bridge does not retry');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(second.status.state, 'connected', 'the newer bridge keeps the line');
    const res = await fetch(`${stack.url}/api/tags`, { headers: stack.auth });
    assert.equal(res.status, 200);
  });

  test('a bridge with another protocol version gets "update required", and so does the proxy\'s log', async () => {
    const lines: string[] = [];
    const log = (await import('../../server/src/log.js')).createLogger({}, 'info', (l) => lines.push(l));
    const stack = await open({ noBridge: true, proxy: { log } });
    for (const version of [2, 99]) {
      const bridge = stack.newBridge({ protocolVersion: version });
      bridge.start();
      const status = await waitForState(bridge, 'error');
      assert.equal(status.code, 'update-required');
      assert.match(status.reason ?? '', /update required: .*v2|v99/);
      assert.equal(status.retryInMs, undefined, 'no retry loop against a proxy that cannot understand it');
      await bridge.stop();
    }
    assert.ok(lines.some((l) => /protocol version mismatch/.test(l)), 'the proxy logged the mismatch');
    const metrics = await stack.proxy.metrics.registry.metrics();
    assert.match(metrics, /ctll_proxy_bridge_connections_total\{result="version-mismatch"\} 2/);
  });

  test('a bridge with a wrong token is refused and keeps retrying with backoff, not in a loop', async () => {
    const stack = await open({ noBridge: true });
    let attempts = 0;
    const bridge = stack.newBridge({ getToken: () => (attempts++, 'not-the-right-token-at-all') });
    bridge.start();
    const status = await waitForState(bridge, 'error');
    assert.equal(status.code, 'unauthorized');
    assert.ok((status.retryInMs ?? 0) > 0, 'a retry is planned after a delay');
    await new Promise((r) => setTimeout(r, 600));
    await bridge.stop();
    assert.ok(attempts >= 2 && attempts <= 12, `${attempts} attempts in 0.6 s: retried, but with backoff`);
  });

  test('Ollama not running: a clear 502 and an "unreachable" event for the tray', async () => {
    const stack = await open({ noBridge: true });
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const bridge = stack.newBridge({ ollamaUrl: `http://127.0.0.1:${closedPort}` });
    const events: Array<boolean | undefined> = [];
    bridge.on('ollama', (o) => events.push(o.reachable));
    bridge.start();
    await waitForState(bridge, 'connected');
    await waitUntil(() => stack.proxy.link.connected, 'connected');
    const res = await fetch(`${stack.url}/api/tags`, { headers: stack.auth });
    assert.equal(res.status, 502);
    assert.match(((await res.json()) as { error: string }).error, /refused the connection: is Ollama running/);
    assert.ok(events.includes(false), 'the bridge reported Ollama unreachable');
    await bridge.stop();
  });
});
