/** The reconnect loop on its own, with a dialer the test controls (no network, no timers to wait out). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TunnelError, type TunnelConnection } from '../connection/tunnel-dialer.js';
import type { BridgeStatus } from './status.js';
import { Supervisor } from './supervisor.js';

/** A tunnel that ends when the test says so. */
function tunnel(): TunnelConnection & { end(e: TunnelError): void; closedBy: string[] } {
  let end!: (e: TunnelError) => void;
  const closed = new Promise<TunnelError>((resolve) => (end = resolve));
  const closedBy: string[] = [];
  return { closed, end, closedBy, transport: 'h2', close: (reason = '') => (closedBy.push(reason), end(new TunnelError('closed', reason))) };
}

/** Resolves with the first status that matches, from the moment of the call. */
function next(supervisor: Supervisor, state: BridgeStatus['state']): Promise<BridgeStatus> {
  return new Promise((resolve) => {
    const on = (s: BridgeStatus): void => {
      if (s.state !== state) return;
      supervisor.off('status', on);
      resolve(s);
    };
    supervisor.on('status', on);
  });
}

const FAST = { initialMs: 1, maxMs: 1, factor: 1, minMs: 1 };
const proxyUrl = new URL('ws://127.0.0.1:9/bridge');

test('a failed dial is retried after a backoff delay; each attempt asks for a fresh token', async () => {
  const tokens: string[] = [];
  const connection = tunnel();
  let dials = 0;
  const supervisor = new Supervisor({
    proxyUrl,
    getToken: () => `token-${tokens.push('x')}`,
    dial: async (token) => {
      dials += 1;
      if (dials === 1) throw new TunnelError('network', `refused (${token})`);
      return connection;
    },
    backoff: FAST,
  });
  const failed = next(supervisor, 'error');
  const connected = next(supervisor, 'connected');
  supervisor.start();
  const error = await failed;
  assert.equal(error.code, 'network');
  assert.equal(error.retryInMs, 1);
  assert.equal(error.attempt, 1);
  assert.match((await connected).reason ?? '', /^connected to ws:\/\/127\.0\.0\.1:9/);
  assert.equal(tokens.length, 2, 'a fresh token for every attempt');
  const stopped = next(supervisor, 'stopped');
  let released = false;
  await supervisor.stop(() => (released = true));
  assert.equal((await stopped).reason, 'stopped');
  assert.ok(released, 'what the streams used is released before the status says stopped');
  assert.deepEqual(connection.closedBy, ['bridge stopped by its user']);
  assert.equal(supervisor.running, false);
});

test('a fatal refusal ends the loop without a retry', async () => {
  let dials = 0;
  const supervisor = new Supervisor({
    proxyUrl,
    getToken: () => 't',
    dial: async () => {
      dials += 1;
      throw new TunnelError('update-required', 'update the bridge', true);
    },
    backoff: FAST,
  });
  const failed = next(supervisor, 'error');
  supervisor.start();
  const status = await failed;
  assert.equal(status.code, 'update-required');
  assert.equal(status.retryInMs, undefined);
  assert.equal(supervisor.running, false);
  assert.equal(dials, 1);
});

test('a tunnel that ends is dialled again, and reported disconnected in between', async () => {
  const first = tunnel();
  const second = tunnel();
  const connections = [first, second];
  const supervisor = new Supervisor({ proxyUrl, getToken: () => 't', dial: async () => connections.shift()!, backoff: FAST });
  const connected = next(supervisor, 'connected');
  supervisor.start();
  await connected;
  const disconnected = next(supervisor, 'disconnected');
  const again = next(supervisor, 'connected');
  first.end(new TunnelError('heartbeat-timeout', 'no pong'));
  assert.equal((await disconnected).code, 'heartbeat-timeout');
  await again;
  await supervisor.stop();
  assert.deepEqual(second.closedBy, ['bridge stopped by its user']);
});
