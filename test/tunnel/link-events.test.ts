/**
 * The proxy's link events (server/src/proxy/link-events.ts), read as the api-backend reads them:
 * the tunnels open now, `ready`, then each opening and closing, with the computer's name, the
 * address and client, and whether nginx sent it straight (EDGE_TUNNEL_HEADER); only with the
 * proxy's secret. And the api-backend's watch of them (link-watch.ts) on a real proxy.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { BRIDGE_PATH, EDGE_TUNNEL_HEADER, MACHINE_HEADER, subprotocolFor, TUNNEL_PROTOCOL_VERSION } from '@cloudtolocalllm/bridge/connection/protocol';
import { PROXY_LINKS_PATH, type LinkEvent, type OpenTunnel } from '@cloudtolocalllm/server/proxy/link-events';
import { LinkWatch } from '@cloudtolocalllm/server/api/link-watch';
import { EdgeBridges } from '@cloudtolocalllm/server/api/edge-bridges';
import { ServerMetrics } from '@cloudtolocalllm/server/api/server-metrics';
import { MemoryAuditLog } from '@cloudtolocalllm/server/audit';
import type { ProxyManager, ProxyRecord } from '@cloudtolocalllm/server/manager/proxy-manager';
import { startStack, waitUntil, type Stack } from './harness.js';

/** The stream of /links as lines, while it is open. */
function readEvents(url: string, token: string | undefined): { events: LinkEvent[]; status: Promise<number>; close(): void } {
  const events: LinkEvent[] = [];
  let buffered = '';
  let req: http.ClientRequest;
  const status = new Promise<number>((resolve, reject) => {
    req = http.get(url + PROXY_LINKS_PATH, { headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      resolve(res.statusCode ?? 0);
      res.setEncoding('utf8').on('data', (c: string) => {
        buffered += c;
        for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
          events.push(JSON.parse(buffered.slice(0, nl)) as LinkEvent);
          buffered = buffered.slice(nl + 1);
        }
      });
    });
    req.on('error', reject);
  });
  return { events, status, close: () => req.destroy() };
}

/** A bridge's raw WebSocket upgrade to the proxy, as nginx sends one straight (or not). */
function rawTunnel(stack: Stack, machine: string, edge: boolean): Promise<WebSocket> {
  const ws = new WebSocket(stack.url.replace(/^http/, 'ws') + BRIDGE_PATH, [subprotocolFor(TUNNEL_PROTOCOL_VERSION)], {
    headers: { ...stack.auth, [MACHINE_HEADER]: machine, 'user-agent': 'link-events-test', ...(edge ? { [EDGE_TUNNEL_HEADER]: '1' } : {}) },
    perMessageDeflate: false,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

describe("the proxy's link events", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.close();
  });

  test("only with the proxy's secret", async () => {
    const none = readEvents(stack.url, undefined);
    assert.equal(await none.status, 401);
    const wrong = readEvents(stack.url, 'not-the-secret');
    assert.equal(await wrong.status, 401);
  });

  test('the tunnels open now, ready, then each open and close with its computer, address, client and route', async () => {
    const watch = readEvents(stack.url, stack.token);
    try {
      assert.equal(await watch.status, 200);
      await waitUntil(() => watch.events.some((e) => e.event === 'ready'), 'ready');
      const first = watch.events[0]!;
      assert.equal(first.event, 'open', 'the bridge connected before the watch, as a snapshot line');
      assert.equal(first.event === 'open' && first.edge, false, 'a bridge that came without nginx');
      assert.equal(watch.events[1]?.event, 'ready');
      const ws = await rawTunnel(stack, 'laptop', true);
      await waitUntil(() => watch.events.some((e) => e.event === 'open' && e.machine === 'laptop'), 'the open line');
      const open = watch.events.find((e): e is Extract<LinkEvent, { event: 'open' }> => e.event === 'open' && e.machine === 'laptop')!;
      assert.deepEqual({ ...open, tunnel: typeof open.tunnel }, { event: 'open', tunnel: 'string', machine: 'laptop', address: '127.0.0.1', client: 'link-events-test', transport: 'websocket', edge: true });
      // The same name again replaces it: a close marked replaced, then the new one's open.
      const again = await rawTunnel(stack, 'laptop', true);
      await waitUntil(() => watch.events.filter((e) => e.event === 'open' && e.machine === 'laptop').length === 2, 'the replacement');
      const close = watch.events.find((e) => e.event === 'close' && e.tunnel === open.tunnel);
      assert.deepEqual(close, { event: 'close', tunnel: open.tunnel, machine: 'laptop', replaced: true });
      again.close();
      await waitUntil(() => watch.events.filter((e) => e.event === 'close' && e.machine === 'laptop').length === 2, 'the close line');
      assert.equal(watch.events.filter((e) => e.event === 'close').at(-1)?.event === 'close' && (watch.events.filter((e) => e.event === 'close').at(-1) as { replaced: boolean }).replaced, false);
      ws.terminate();
    } finally {
      watch.close();
    }
  });

  test("the api-backend's watch counts the tunnels nginx sent, each once, and closes them when the proxy goes", async () => {
    const opened: OpenTunnel[] = [];
    const closed: Array<{ machine: string; replaced: boolean }> = [];
    let running = true;
    let ended = 0;
    const watch = new LinkWatch(
      { endpoint: stack.url, secret: stack.token },
      {
        opened: (t) => opened.push(t),
        closed: (t, replaced) => closed.push({ machine: t.machine, replaced }),
        stillRunning: () => running,
        ended: () => (ended += 1),
      },
      // Silence cuts the stream after 300 ms here (three pings of 20 s in production), so the
      // watch keeps opening it again: what it counts must still be each tunnel once.
      { retryMs: 50, silenceMs: 300 },
    );
    try {
      const desk = await rawTunnel(stack, 'desk', true);
      await waitUntil(() => opened.length === 1, 'the edge tunnel counted');
      assert.equal(opened[0]!.machine, 'desk', 'the harness bridge, which came without nginx, is not counted');
      const plain = await rawTunnel(stack, 'plain', false);
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(opened.length, 1, 'a tunnel without the edge mark is the splice\'s to count');
      plain.close();
      desk.close();
      await waitUntil(() => closed.length === 1, 'its close counted');
      assert.deepEqual(closed, [{ machine: 'desk', replaced: false }]);
      const again = await rawTunnel(stack, 'desk', true);
      await waitUntil(() => opened.length === 2, 'a new tunnel counted');
      assert.equal(watch.tunnels, 1);
      await new Promise((r) => setTimeout(r, 800));
      assert.deepEqual([opened.length, closed.length], [2, 1], 'reopening the stream counted nothing twice');
      // The proxy goes (the next stream's check says so): the watch closes what it counted, once, and ends.
      running = false;
      await waitUntil(() => ended === 1, 'the watch ends');
      assert.deepEqual(closed.at(-1), { machine: 'desk', replaced: false });
      assert.equal(closed.length, 2);
      assert.equal(watch.tunnels, 0);
      again.close();
    } finally {
      watch.stop();
    }
  });

  test("the api-backend's books of a proxy it adopted at start: its edge tunnels audited, counted and closed", async () => {
    // A proxy that runs already (adopted from a previous run of the api-backend), with a bridge
    // nginx joined to it then: watchRunning() at the edge port's start picks it up.
    const desk = await rawTunnel(stack, 'adopted-desk', true);
    const counted: string[] = [];
    const record = { state: 'running', instance: { endpoint: stack.url }, secret: stack.token } as unknown as ProxyRecord;
    const records = new Map([['user-a', record]]);
    const manager = {
      users: () => [...records.keys()],
      record: (u: string) => records.get(u),
      bridgeOpened: (u: string) => counted.push(`+${u}`),
      bridgeClosed: (u: string) => counted.push(`-${u}`),
    } as unknown as ProxyManager;
    const audit = new MemoryAuditLog();
    const metrics = new ServerMetrics(false);
    const books = new EdgeBridges(manager, metrics, audit, { retryMs: 50 });
    const gauge = async (): Promise<number> => (await metrics.bridgesConnected.get()).values[0]?.value ?? 0;
    try {
      books.watchRunning();
      await waitUntil(() => counted.length === 1, 'the adopted tunnel counted');
      assert.deepEqual(counted, ['+user-a']);
      assert.equal(await gauge(), 1);
      assert.equal(books.tunnels('user-a' as never), 1);
      const line = audit.entries.find((e) => e.action === 'bridge.connect') as unknown as Record<string, unknown>;
      assert.deepEqual({ user: line['userHash'], machine: line['machine'], address: line['address'], client: line['client'] }, { user: 'user-a', machine: 'adopted-desk', address: '127.0.0.1', client: 'link-events-test' });
      // Watching again is a no-op for the same proxy.
      books.watch('user-a' as never, record);
      desk.close();
      await waitUntil(() => counted.length === 2, 'its close counted');
      assert.deepEqual(counted, ['+user-a', '-user-a']);
      assert.equal(await gauge(), 0);
      assert.equal(audit.entries.filter((e) => e.action === 'bridge.disconnect').length, 1);
      // The next tunnel of that computer: counted and closed again, once each.
      const again = await rawTunnel(stack, 'adopted-desk', true);
      await waitUntil(() => counted.length === 3, 'a new tunnel counted');
      again.close();
      await waitUntil(() => counted.length === 4, 'and its close');
      assert.deepEqual(counted, ['+user-a', '-user-a', '+user-a', '-user-a']);
      assert.equal(await gauge(), 0);
      records.clear();
    } finally {
      books.close();
    }
  });
});
