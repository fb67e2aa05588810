/** The desktop's StreamingProxyService against the real cloud server (in-process runtime). */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { StreamingProxyService, type ProxyServiceState } from '../../main/proxy-service.js';
import { startCloud, type Cloud } from '../cloud/cloud-harness.js';
import { startCloudServer } from '../../server/src/cloud-server.js';
import { loadConfig } from '../../server/src/config.js';
import { silentLogger } from '../../server/src/log.js';
import { headlessSignIn } from '../../main/auth/headless-login.js';

const FAST = { initialMs: 50, maxMs: 200, factor: 2, minMs: 20 };

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

describe('StreamingProxyService', () => {
  let cloud: Cloud;
  let token: string;
  before(async () => {
    cloud = await startCloud();
    token = await cloud.signIn('dora');
  });
  after(() => cloud.close());

  test('ensureProxyRunning starts the proxy and reports provisioning, then running', async () => {
    const service = new StreamingProxyService({ serverUrl: cloud.url, getToken: async () => token, backoff: FAST });
    const states: ProxyServiceState[] = [];
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
    const service = new StreamingProxyService({ serverUrl: cloud.url, getToken: async () => 'not-a-token', backoff: FAST });
    const started = Date.now();
    await assert.rejects(service.ensureProxyRunning(), (e: Error & { code?: string }) => e.code === 'unauthorized' && /refused your sign-in/.test(e.message));
    assert.ok(Date.now() - started < 2_000);
    assert.equal(service.state.state, 'error');
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
    const service = new StreamingProxyService({
      serverUrl: `http://127.0.0.1:${port}`,
      getToken: async () => ((await portOpen()) ? lateToken : 'not-yet'),
      backoff: FAST,
      timeoutMs: 20_000,
    });
    const retries: string[] = [];
    service.on('state', (s) => s.detail?.includes('retrying') && retries.push(s.detail));
    const running = service.ensureProxyRunning();
    await new Promise((r) => setTimeout(r, 400));
    const late = await startCloudServer(loadConfig({}, ['--port', String(port), '--runtime', 'process']), { log: silentLogger, audit: { record: () => {} } });
    try {
      giveToken((await headlessSignIn({ issuer: late.embeddedIssuer!.issuer, clientId: late.embeddedIssuer!.desktopClientId, audience: late.audience, username: 'eve' })).accessToken);
      const status = await running;
      assert.equal(status.status, 'running');
      assert.ok(retries.length >= 2, `it retried (${retries.length} times)`);
      assert.match(retries[0] ?? '', /cannot be reached \(ECONNREFUSED\)/);
    } finally {
      await late.close();
    }
  });

  test('it gives up after its timeout with the last problem, and can be aborted', async () => {
    const port = await freePort();
    const service = new StreamingProxyService({ serverUrl: `http://127.0.0.1:${port}`, getToken: async () => 't', backoff: FAST, timeoutMs: 500 });
    await assert.rejects(service.ensureProxyRunning(), (e: Error & { code?: string }) => e.code === 'timeout' && /ECONNREFUSED/.test(e.message));
    const controller = new AbortController();
    const slow = new StreamingProxyService({ serverUrl: `http://127.0.0.1:${port}`, getToken: async () => 't', backoff: { ...FAST, minMs: 1000, initialMs: 1000, maxMs: 2000 } });
    const p = slow.ensureProxyRunning(controller.signal);
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(p, (e: Error & { code?: string }) => e.code === 'aborted');
  });
});
