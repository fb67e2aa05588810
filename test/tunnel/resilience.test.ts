/** What happens when parts of the path fail: the bridge dies, the proxy restarts, the line goes dead. */
import { after, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { DEFAULT_HEARTBEAT } from '@cloudtolocalllm/bridge/connection/heartbeat';
import { BRIDGE_PATH, h2UpgradeFor, subprotocolFor, TUNNEL_PROTOCOL_VERSION } from '@cloudtolocalllm/bridge/connection/protocol';
import type { BridgeStatus } from '@cloudtolocalllm/bridge/supervisor/status';
import { StaticTokenAuthenticator } from '@cloudtolocalllm/server/proxy/auth';
import { NO_BRIDGE_MESSAGE } from '@cloudtolocalllm/server/proxy/relay';
import { StreamingProxy } from '@cloudtolocalllm/server/proxy/streaming-proxy';
import { FAST_BACKOFF, FAST_HEARTBEAT, startStack, waitForState, waitUntil, type Stack } from './harness.js';

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

/** A loopback port nothing listens on. */
function unusedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function spawnBridgeCli(stack: Stack, proxyUrl = stack.url + BRIDGE_PATH, name = 'cli-box'): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'bridge/cli.ts', '--proxy-url', proxyUrl, '--ollama-url', stack.emulator.url, '--name', name, '--json'], {
    cwd: ROOT,
    env: { ...process.env, CLOUDTOLOCALLLM_TOKEN: stack.token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * The bridge CLI's exit code and the status events it printed (--json). A CLI still running after
 * `limitMs` (a safety net against a hang, far beyond the milliseconds it takes) is killed.
 */
async function cliOutcome(child: ChildProcess, limitMs = 60_000): Promise<{ code: number | null; statuses: BridgeStatus[] }> {
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => (out += d));
  const limit = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(limit);
  const events = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as BridgeStatus & { event: string });
  return { code, statuses: events.filter((e) => e.event === 'status') };
}

/**
 * A TCP relay in front of the proxy that can freeze (keep both sockets open, move no more bytes:
 * a dead line without FIN or RST) and can rewrite what the bridge sends.
 */
async function tcpRelay(stack: Stack, rewrite: (bytes: Buffer) => Buffer = (b) => b): Promise<{ url: string; freeze(on: boolean): void; close(): void }> {
  let frozen = false;
  const pairs: Array<[net.Socket, net.Socket]> = [];
  const relay = net.createServer((client) => {
    const upstream = net.connect(Number(new URL(stack.url).port), '127.0.0.1');
    pairs.push([client, upstream]);
    client.on('data', (d) => frozen || upstream.write(rewrite(d)));
    upstream.on('data', (d) => frozen || client.write(d));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    // A dead line carries no FIN either: while frozen, one side closing is not passed on.
    client.on('close', () => frozen || upstream.destroy());
    upstream.on('close', () => frozen || client.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${(relay.address() as net.AddressInfo).port}${BRIDGE_PATH}`,
    freeze: (on) => void (frozen = on),
    close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      relay.close();
    },
  };
}

/** A GET through the proxy with node:http (fetch's own timers read the clock some tests fake). */
function get(stack: Stack, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(`${stack.url}${path}`, { headers: stack.auth, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

describe('failures along the path', () => {
  test('no bridge connected: 503 at once, in Ollama\'s error shape, with Retry-After: 5', async () => {
    const stack = await open({ noBridge: true });
    // No bridge ever connects here: a proxy that waited for one would never answer (the test's timeout).
    const res = await fetch(`${stack.url}/api/tags`, { headers: stack.auth });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '5');
    assert.deepEqual(await res.json(), { error: NO_BRIDGE_MESSAGE });
    const ollama = new Ollama({ host: stack.url, headers: stack.auth });
    await assert.rejects(ollama.list(), (e: Error & { status_code?: number }) => e.status_code === 503 && e.message === NO_BRIDGE_MESSAGE);
  });

  test('the bridge process killed mid-stream: the client sees an error, never a clean end', async () => {
    const stack = await open({ noBridge: true, emulator: { tokenIntervalMs: 30 } });
    const child = spawnBridgeCli(stack);
    try {
      await waitUntil(() => stack.proxy.links.connected, 'the bridge CLI connected', 30_000);
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
      assert.equal(lines.at(-1)?.error, 'the connection to your computer was lost mid-stream: this answer is incomplete');
      await stack.emulator.waitFor((r) => r.path === '/api/generate' && r.aborted, 30_000);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('the bridge process killed mid-stream on the OpenAI path: the SSE stream ends with an error event, never [DONE]', async () => {
    const stack = await open({ noBridge: true, emulator: { tokenIntervalMs: 30 } });
    const child = spawnBridgeCli(stack);
    try {
      await waitUntil(() => stack.proxy.links.connected, 'the bridge CLI connected', 30_000);
      const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: stack.token, maxRetries: 0 });
      const stream = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 500 });
      let chunks = 0;
      let finish: string | null | undefined;
      let failed: unknown;
      try {
        for await (const chunk of stream) {
          chunks += 1;
          finish = chunk.choices[0]?.finish_reason ?? finish;
          if (chunks === 3) child.kill('SIGKILL');
        }
      } catch (e) {
        failed = e;
      }
      assert.ok(failed instanceof OpenAI.APIError, `the client reports an API error, not a finished stream (${String(failed)})`);
      assert.equal(failed.message, 'the connection to your computer was lost mid-stream: this answer is incomplete');
      assert.ok(chunks >= 3, 'the chunks before the loss arrived');
      assert.equal(finish, undefined, 'no chunk claims the answer finished');
      await stack.emulator.waitFor((r) => r.path === '/v1/chat/completions' && r.aborted, 30_000);
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
      await waitUntil(() => second.links.connected, 'the new proxy sees the bridge');
      const res = await fetch(`${stack.url}/api/version`, { headers: stack.auth });
      assert.equal(res.status, 200);
    } finally {
      await second.close();
    }
  });

  test('a dead line (no FIN, no RST) is detected by heartbeats on both sides', async () => {
    const stack = await open({ noBridge: true });
    const relay = await tcpRelay(stack);
    const bridge = stack.newBridge({ proxyUrl: relay.url });
    try {
      bridge.start();
      await waitForState(bridge, 'connected');
      await waitUntil(() => stack.proxy.links.connected, 'the proxy sees the bridge');
      relay.freeze(true);
      // FAST_HEARTBEAT declares death after 3 s of silence; the waits below only bound a hang.
      const lost = await waitForState(bridge, 'disconnected', 60_000);
      assert.equal(lost.code, 'heartbeat-timeout');
      await waitUntil(() => !stack.proxy.links.connected, 'the proxy dropped the dead bridge', 60_000);
      relay.freeze(false);
      await waitForState(bridge, 'connected', 60_000);
    } finally {
      await bridge.stop();
      relay.close();
    }
  });

  test('with the default heartbeat (ping every 10 s, dead after 20 s), a dead line is found on both sides within 30 s (faked clock)', { timeout: 120_000 }, async () => {
    // Only the heartbeat's clock is faked (its interval and Date.now): sockets, WebSocket and
    // HTTP/2 stay real, so what is counted is time as the heartbeat sees it, not the machine's speed.
    mock.timers.enable({ apis: ['setInterval', 'Date'], now: Date.now() });
    const relay = { close: () => {} } as Awaited<ReturnType<typeof tcpRelay>>;
    let bridge: ReturnType<Stack['newBridge']> | undefined;
    try {
      const stack = await open({ noBridge: true, proxy: { heartbeat: DEFAULT_HEARTBEAT } });
      Object.assign(relay, await tcpRelay(stack));
      bridge = stack.newBridge({ proxyUrl: relay.url, heartbeat: DEFAULT_HEARTBEAT });
      bridge.start();
      await waitForState(bridge, 'connected');
      await waitUntil(() => stack.proxy.links.connected, 'the proxy sees the bridge');
      const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));
      // The unluckiest moment for the line to die: a frame was heard just after a heartbeat tick,
      // so the next two ticks still find less than 20 s of silence.
      mock.timers.tick(DEFAULT_HEARTBEAT.intervalMs);
      await settle();
      mock.timers.tick(1);
      assert.equal(await get(stack, '/api/version'), 200, 'a request just before the line dies');
      relay.freeze(true);
      const diedAt = Date.now();
      let lost: BridgeStatus | undefined;
      bridge.on('status', (st) => void (st.state === 'disconnected' && (lost ??= st)));
      // Straight to each heartbeat tick after the death (the faked clock runs a timer with the
      // time it is advanced to): 9.999 s, 19.999 s and 29.999 s of silence.
      const found: Array<[number, boolean, boolean]> = [];
      for (const step of [DEFAULT_HEARTBEAT.intervalMs - 1, DEFAULT_HEARTBEAT.intervalMs, DEFAULT_HEARTBEAT.intervalMs]) {
        mock.timers.tick(step);
        await settle();
        found.push([Date.now() - diedAt, lost !== undefined, !stack.proxy.links.connected]);
      }
      assert.deepEqual(found, [
        [9_999, false, false],
        [19_999, false, false],
        [29_999, true, true],
      ], '[silence, the bridge found it, the proxy found it] at each tick: found at the third, within 30 s');
      assert.equal(lost?.code, 'heartbeat-timeout');
    } finally {
      mock.timers.reset();
      await bridge?.stop();
      relay.close();
    }
  });

  test('a second bridge of the same user and computer name replaces the first, which stops instead of fighting back', async () => {
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
    const log = (await import('@cloudtolocalllm/server/log')).createLogger({}, 'info', (l) => lines.push(l));
    const stack = await open({ noBridge: true, proxy: { log } });
    for (const version of [2, 99]) {
      const bridge = stack.newBridge({ protocolVersion: version });
      bridge.start();
      const status = await waitForState(bridge, 'error');
      assert.equal(status.code, 'update-required');
      assert.equal(status.reason, `update required: your desktop app speaks tunnel protocol v${version}, this cloud proxy only v1; the cloud server must be updated`);
      assert.equal(status.retryInMs, undefined, 'no retry loop against a proxy that cannot understand it');
      await bridge.stop();
    }
    assert.ok(lines.some((l) => /protocol version mismatch/.test(l)), 'the proxy logged the mismatch');
    const metrics = await stack.proxy.metrics.registry.metrics();
    assert.match(metrics, /ctll_proxy_bridge_connections_total\{result="version-mismatch"\} 2/);
  });

  test('the bridge CLI exits with status 3 on "update required" (and 4 when another bridge of its computer name took over), without retrying', async () => {
    const stack = await open({ noBridge: true });
    // The CLI speaks this release's protocol; a relay turns its offer into a future version,
    // which the real proxy refuses as it would refuse a bridge from another release.
    // Both offers: the upgrade to HTTP/2 on the socket, and the WebSocket subprotocol.
    const offers = [
      [Buffer.from(h2UpgradeFor(TUNNEL_PROTOCOL_VERSION)), Buffer.from(h2UpgradeFor(TUNNEL_PROTOCOL_VERSION + 1))],
      [Buffer.from(subprotocolFor(TUNNEL_PROTOCOL_VERSION)), Buffer.from(subprotocolFor(TUNNEL_PROTOCOL_VERSION + 1))],
    ] as const;
    for (const [ours, future] of offers) assert.equal(ours.length, future.length);
    const relay = await tcpRelay(stack, (bytes) => {
      for (const [ours, future] of offers) {
        const at = bytes.indexOf(ours);
        if (at >= 0) future.copy(bytes, at);
      }
      return bytes;
    });
    try {
      const updated = await cliOutcome(spawnBridgeCli(stack, relay.url));
      assert.equal(updated.code, 3, JSON.stringify(updated.statuses));
      const refused = updated.statuses.filter((s) => s.state === 'error');
      assert.deepEqual(refused.map((s) => [s.code, s.retryInMs]), [['update-required', undefined]], 'one refusal, no retry');
      assert.match(refused[0]!.reason ?? '', /^update required: your desktop app speaks tunnel protocol v2, /);
    } finally {
      relay.close();
    }

    const cli = spawnBridgeCli(stack);
    const outcome = cliOutcome(cli);
    await waitUntil(() => stack.proxy.links.connected, 'the bridge CLI connected', 30_000);
    // The same computer name replaces (a different one would join: test/tunnel/several-computers.test.ts).
    const second = stack.newBridge({ name: 'cli-box' });
    second.start();
    await waitForState(second, 'connected');
    const replaced = await outcome;
    assert.equal(replaced.code, 4, JSON.stringify(replaced.statuses));
    assert.equal(replaced.statuses.at(-1)?.state, 'stopped');
    assert.ok(replaced.statuses.some((s) => s.state === 'disconnected' && s.code === 'replaced' && s.retryInMs === undefined));
  });

  test('a bridge with a wrong token is refused and keeps retrying with backoff, not in a loop', async () => {
    const stack = await open({ noBridge: true });
    const attempts: number[] = [];
    const planned: Array<{ at: number; retryInMs: number }> = [];
    const bridge = stack.newBridge({ getToken: () => (attempts.push(performance.now()), 'not-the-right-token-at-all') });
    bridge.on('status', (s) => {
      if (s.state === 'error') planned.push({ at: performance.now(), retryInMs: s.retryInMs ?? -1 });
    });
    bridge.start();
    await waitUntil(() => planned.length >= 5, 'five refusals', 60_000);
    await bridge.stop();
    assert.ok(attempts.length >= 5 && attempts.length <= planned.length + 1, `${attempts.length} attempts for ${planned.length} refusals: one per planned retry`);
    for (const [i, p] of planned.slice(0, 5).entries()) {
      const ceiling = Math.min(FAST_BACKOFF.maxMs, FAST_BACKOFF.initialMs * FAST_BACKOFF.factor ** i);
      assert.ok(p.retryInMs >= FAST_BACKOFF.minMs && p.retryInMs <= ceiling, `retry ${i + 1} in ${p.retryInMs} ms, within [${FAST_BACKOFF.minMs}, ${ceiling}]`);
      // The next attempt waits at least the planned delay (a slow machine only waits longer).
      const next = attempts[i + 1];
      if (i < 4) assert.ok(next !== undefined && next - p.at >= p.retryInMs - 1, `attempt ${i + 2} came ${next! - p.at} ms after a planned ${p.retryInMs} ms`);
    }
  });

  test('the default backoff: the first retry within 0.25-1 s; a connection that lasted 10 s resets it, a shorter one does not (faked clock)', { timeout: 120_000 }, async () => {
    const stack = await open({ noBridge: true, proxy: { heartbeat: DEFAULT_HEARTBEAT } });
    const closedPort = await unusedPort();
    const defaults = stack.newBridge({ proxyUrl: `ws://127.0.0.1:${closedPort}${BRIDGE_PATH}`, backoff: undefined });
    defaults.start();
    const first = await waitForState(defaults, 'error');
    await defaults.stop();
    assert.ok(first.retryInMs! >= 250 && first.retryInMs! <= 1000, `first retry in ${first.retryInMs} ms`);

    // Only Date is faked: the bridge measures how long a connection lasted with it.
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    let refusals = 3;
    // A cap far above the delays seen here, so every failure counts (the backoff stops counting at its cap).
    const backoff = { initialMs: 10, maxMs: 60_000, factor: 2, minMs: 5 };
    const bridge = stack.newBridge({ heartbeat: DEFAULT_HEARTBEAT, backoff, getToken: () => (refusals-- > 0 ? 'not-the-right-token-at-all' : stack.token) });
    try {
      const statuses: BridgeStatus[] = [];
      bridge.on('status', (s) => statuses.push(s));
      bridge.start();
      /** Lets the connection last `ms` of faked time, drops it from the proxy and returns the bridge's next status. */
      const drop = async (ms: number): Promise<BridgeStatus> => {
        await waitForState(bridge, 'connected', 60_000);
        await waitUntil(() => stack.proxy.links.connected, 'the proxy sees the bridge', 60_000);
        mock.timers.tick(ms);
        const lost = waitForState(bridge, 'disconnected', 60_000);
        stack.proxy.links.close('dropped by the test');
        return lost;
      };
      const short = await drop(9_999);
      const stable = await drop(10_000);
      await waitForState(bridge, 'connected', 60_000);
      const refused = statuses.filter((s) => s.state === 'error').map((s) => s.attempt);
      assert.deepEqual(refused, [1, 2, 3], 'three refusals grow the backoff');
      assert.equal(short.attempt, 4, 'a connection of 9.999 s did not reset it');
      assert.equal(stable.attempt, 1, 'a connection of 10 s reset it: the next delay is the first one again');
      assert.ok(short.retryInMs! >= backoff.minMs && short.retryInMs! <= backoff.initialMs * 2 ** 3, `retry in ${short.retryInMs} ms without a reset`);
      assert.ok(stable.retryInMs! >= backoff.minMs && stable.retryInMs! <= backoff.initialMs, `retry in ${stable.retryInMs} ms after the reset`);
    } finally {
      mock.timers.reset();
      await bridge.stop();
    }
  });

  test('Ollama not running: a clear 502 and an "unreachable" event for the tray', async () => {
    const stack = await open({ noBridge: true });
    const closedPort = await unusedPort();
    const bridge = stack.newBridge({ ollamaUrl: `http://127.0.0.1:${closedPort}` });
    const events: Array<boolean | undefined> = [];
    bridge.on('ollama', (o) => events.push(o.reachable));
    bridge.start();
    await waitForState(bridge, 'connected');
    await waitUntil(() => stack.proxy.links.connected, 'connected');
    const res = await fetch(`${stack.url}/api/tags`, { headers: stack.auth });
    assert.equal(res.status, 502);
    assert.match(((await res.json()) as { error: string }).error, /refused the connection: is Ollama running/);
    assert.ok(events.includes(false), 'the bridge reported Ollama unreachable');
    await bridge.stop();
  });
});
