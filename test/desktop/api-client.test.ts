/**
 * The desktop's ApiClient against the real cloud server (in-process runtime), and
 * against a server answering 5xx, 429 and 4xx on purpose for the retry rules.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { ApiClient, type ProxyStartState } from '../../main/api-client.js';
import { startCloud, type Cloud } from '../cloud/cloud-harness.js';
import { startCloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig } from '@cloudtolocalllm/server/config';
import { silentLogger } from '@cloudtolocalllm/server/log';
import { headlessSignIn } from '../../scripts/headless-login.js';

const FAST = { initialMs: 50, maxMs: 200, factor: 2, minMs: 20 };

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Resolves with the first state the service reports that `predicate` accepts. */
function nextState(service: ApiClient, predicate: (s: ProxyStartState) => boolean): Promise<ProxyStartState> {
  return new Promise((resolve) => {
    const on = (s: ProxyStartState): void => {
      if (!predicate(s)) return;
      service.off('state', on);
      resolve(s);
    };
    service.on('state', on);
  });
}

interface Scripted {
  url: string;
  /** Every request, as "METHOD path". */
  requests: string[];
  close(): Promise<void>;
}

/** A server that answers each request with the next of `answers` (the last one repeats). */
async function scriptedServer(answers: Array<{ status: number; headers?: Record<string, string>; body: unknown }>): Promise<Scripted> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const answer = answers[Math.min(requests.length - 1, answers.length - 1)]!;
    req.resume();
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers }).end(JSON.stringify(answer.body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const RUNNING = { status: 'running', proxyId: 'process-abc', createdAt: null, lastActivity: null, health: null, bridgeConnected: false, runtime: 'process' };

describe('ApiClient', () => {
  let cloud: Cloud;
  let token: string;
  before(async () => {
    cloud = await startCloud();
    token = await cloud.signIn('dora');
  });
  after(() => cloud.close());

  test('ensureProxyRunning starts the proxy and reports provisioning, then running', async () => {
    const service = new ApiClient({ serverUrl: cloud.url, getToken: async () => token, backoff: FAST });
    const states: ProxyStartState[] = [];
    service.on('state', (s) => states.push(s));
    const status = await service.ensureProxyRunning();
    assert.equal(status.status, 'running');
    assert.match(status.proxyId ?? '', /^process-/);
    assert.deepEqual(states.map((s) => s.state), ['provisioning', 'running']);
    const checked = await service.checkProxyStatus();
    assert.equal(checked.status, 'running');
    assert.equal(checked.proxyId, status.proxyId, 'idempotent: the same proxy');
  });

  test('a refused token fails at once, without retrying', async () => {
    let attempts = 0;
    const service = new ApiClient({ serverUrl: cloud.url, getToken: async () => (attempts++, 'not-a-token'), backoff: FAST });
    await assert.rejects(service.ensureProxyRunning(), (e: Error & { code?: string }) => e.code === 'unauthorized' && /refused your sign-in/.test(e.message));
    assert.equal(attempts, 1, 'one attempt');
    assert.equal(service.state.state, 'error');
  });

  test('5xx and 429 answers are retried, waiting as long as Retry-After asks, until the proxy runs', async () => {
    const server = await scriptedServer([
      { status: 503, body: { error: 'the proxy runtime is busy' } },
      { status: 429, headers: { 'retry-after': '2' }, body: { error: 'too many requests' } },
      { status: 502, body: { error: 'bad gateway' } },
      { status: 201, body: RUNNING },
    ]);
    try {
      const service = new ApiClient({ serverUrl: server.url, getToken: async () => 't', backoff: FAST });
      const details: string[] = [];
      service.on('state', (s) => s.state === 'provisioning' && s.detail?.includes('retrying') && details.push(s.detail));
      const status = await service.ensureProxyRunning();
      assert.equal(status.proxyId, 'process-abc');
      assert.deepEqual(server.requests, ['POST /api/proxy/start', 'POST /api/proxy/start', 'POST /api/proxy/start', 'POST /api/proxy/start']);
      assert.deepEqual(details, [
        'the cloud server answered 503: the proxy runtime is busy; retrying in 1 s',
        'the cloud server answered 429: too many requests (retry after 2 s); retrying in 2 s',
        'the cloud server answered 502: bad gateway; retrying in 1 s',
      ]);
      assert.equal(service.state.state, 'running');
    } finally {
      await server.close();
    }
  });

  test('another 4xx is not retried: it says what the server answered', async () => {
    const server = await scriptedServer([{ status: 404, body: { error: 'no such route' } }]);
    try {
      const service = new ApiClient({ serverUrl: server.url, getToken: async () => 't', backoff: FAST });
      await assert.rejects(service.ensureProxyRunning(), (e: Error & { code?: string }) => e.code === 'bad-answer' && e.message === 'the cloud server answered 404: no such route');
      assert.equal(server.requests.length, 1);
    } finally {
      await server.close();
    }
  });

  test('a cloud server that is not up yet is retried with backoff until it answers', async () => {
    const port = await freePort();
    // The token can only be had once the server (and its issuer) is up; until then calls fail at connect.
    let giveToken!: (t: string) => void;
    const lateToken = new Promise<string>((r) => (giveToken = r));
    // Once the port answers, wait for the real token: a placeholder sent to a live server would be
    // refused (401), which is not the transient failure this test is about.
    const portOpen = (): Promise<boolean> =>
      new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
    const service = new ApiClient({
      serverUrl: `http://127.0.0.1:${port}`,
      getToken: async () => ((await portOpen()) ? lateToken : 'not-yet'),
      backoff: FAST,
      timeoutMs: 20_000,
    });
    const retries: string[] = [];
    service.on('state', (s) => s.detail?.includes('retrying') && retries.push(s.detail));
    const twoRetries = nextState(service, () => retries.length >= 2);
    const running = service.ensureProxyRunning();
    await twoRetries;
    const late = await startCloudServer(loadConfig({}, ['--port', String(port), '--runtime', 'process']), { log: silentLogger, audit: { record: () => {} } });
    try {
      giveToken((await headlessSignIn({ issuer: late.embeddedIssuer!.issuer, clientId: late.embeddedIssuer!.desktopClientId, audience: late.audience, username: 'eve' })).accessToken);
      const status = await running;
      assert.equal(status.status, 'running');
      assert.match(retries[0] ?? '', /cannot be reached \(ECONNREFUSED\)/);
    } finally {
      await late.close();
    }
  });

  test('it gives up after its timeout with the last problem, and can be aborted while it waits', async () => {
    const port = await freePort();
    const service = new ApiClient({ serverUrl: `http://127.0.0.1:${port}`, getToken: async () => 't', backoff: FAST, timeoutMs: 500 });
    await assert.rejects(service.ensureProxyRunning(), (e: Error & { code?: string }) => e.code === 'timeout' && /ECONNREFUSED/.test(e.message));
    const controller = new AbortController();
    const slow = new ApiClient({ serverUrl: `http://127.0.0.1:${port}`, getToken: async () => 't', backoff: { ...FAST, minMs: 60_000, initialMs: 60_000, maxMs: 60_000 } });
    // Aborted during its first wait (a minute long): it must not sit out the wait.
    void nextState(slow, (s) => s.detail?.includes('retrying in 60 s') === true).then(() => controller.abort());
    await assert.rejects(slow.ensureProxyRunning(controller.signal), (e: Error & { code?: string }) => e.code === 'aborted');
  });
});
