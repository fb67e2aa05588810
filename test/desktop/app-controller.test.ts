/**
 * The desktop app's logic end to end under Node (Electron itself cannot run here): sign in,
 * provision the proxy, run the bridge, reach "connected" against the local stack, apply
 * settings, restore the session at the next start, sign out.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import { AppController, type LocalStack } from '../../main/app-controller.js';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { MemoryTokenStore } from '../../main/auth/token-store.js';
import type { StatusView } from '../../main/ipc-contract.js';
import { DEFAULT_SETTINGS, type Settings } from '../../main/settings/settings.js';
import { startCloudServer, type CloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig } from '@cloudtolocalllm/server/config';
import { silentLogger } from '@cloudtolocalllm/server/log';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { FAST_BACKOFF, FAST_HEARTBEAT } from '../tunnel/harness.js';

const quiet = { info: (m: string, f?: object) => process.env['DBG'] && console.error('INFO', m, JSON.stringify(f)), warn: (m: string, f?: object) => process.env['DBG'] && console.error('WARN', m, JSON.stringify(f)), error: (m: string, f?: object) => process.env['DBG'] && console.error('ERR', m, JSON.stringify(f)) };

function waitForStatus(c: AppController, predicate: (s: StatusView) => boolean, what: string, timeoutMs = 15_000): Promise<StatusView> {
  const now = c.status();
  if (predicate(now)) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`status never became ${what}; last: ${JSON.stringify(c.status())}`)), timeoutMs);
    const on = (s: StatusView): void => {
      if (!predicate(s)) return;
      clearTimeout(timer);
      c.off('status', on);
      resolve(s);
    };
    c.on('status', on);
  });
}

describe('the desktop app controller against the local stack', () => {
  let emulator: OllamaEmulator;
  let server: CloudServer | undefined;
  let settings: Settings;
  const store = new MemoryTokenStore();
  const controllers: AppController[] = [];
  const localStack = async (): Promise<LocalStack> => {
    server ??= await startCloudServer(loadConfig({}, ['--port', '0', '--runtime', 'process']), { log: silentLogger, audit: { record: () => {} }, heartbeat: FAST_HEARTBEAT });
    return { url: server.url, close: async () => undefined };
  };
  const controller = (): AppController => {
    const c = new AppController({
      settings: () => settings,
      tokenStore: store,
      openBrowser: () => assert.fail('no browser in this test: sign-in goes through the login form over HTTP'),
      startLocalStack: localStack,
      signInImpl: (o) => headlessSignIn({ issuer: o.issuer, clientId: o.clientId, audience: o.audience, username: 'frank' }),
      log: quiet,
      bridgeTuning: { heartbeat: FAST_HEARTBEAT, backoff: FAST_BACKOFF },
      statusIntervalMs: 100,
    });
    controllers.push(c);
    return c;
  };

  before(async () => {
    emulator = new OllamaEmulator({ tokenIntervalMs: 5 });
    await emulator.start();
    settings = { ...DEFAULT_SETTINGS, ollamaUrl: emulator.url };
  });
  after(async () => {
    for (const c of controllers) await c.stop();
    await server?.close();
    await emulator.close();
  });

  let first: AppController;
  test('at first start it is signed out and says so', async () => {
    first = controller();
    await first.start();
    const s = first.status();
    assert.equal(s.trayState, 'signed-out');
    assert.match(s.statusLine, /sign in/);
    assert.equal(s.keychain.available, false, 'a memory store is reported as such');
  });

  test('sign-in provisions the proxy and the status reaches connected', async () => {
    const result = await first.signIn();
    assert.deepEqual(result, { ok: true });
    const s = await waitForStatus(first, (v) => v.trayState === 'connected', 'connected');
    assert.equal(s.account.signedIn, true);
    assert.equal(s.account.name, 'frank');
    assert.equal(s.proxy.state, 'running');
    assert.match(s.statusLine, /connected to this computer/);
    assert.ok(await store.load(), 'the tokens were stored');
  });

  test('an Ollama client in the "cloud" reaches this computer\'s Ollama, and the counters count it', async () => {
    const tokens = (await store.load())!;
    const ollama = new Ollama({ host: `${server!.url}/ollama`, headers: { authorization: `Bearer ${tokens.accessToken}` } });
    assert.ok((await ollama.list()).models.length > 0);
    const s = await waitForStatus(first, (v) => v.counters.requests >= 1 && v.counters.bytesOut > 0, 'counting');
    assert.ok(s.ollama.reachable);
  });

  test('a policy change applies at once, without reconnecting', async () => {
    const tokens = (await store.load())!;
    const pull = () => fetch(`${server!.url}/ollama/api/pull`, { method: 'POST', headers: { authorization: `Bearer ${tokens.accessToken}` }, body: '{"model":"x","stream":false}' });
    assert.equal((await pull()).status, 403);
    const before = first.status();
    assert.equal(before.bridge.state, 'connected');
    const seen: StatusView[] = [];
    const record = (s: StatusView): void => void seen.push(s);
    first.on('status', record);
    const previous = settings;
    settings = { ...settings, allowManagement: ['pull'] };
    await first.applySettings(previous, settings);
    first.off('status', record);
    // A reconnect shows as a bridge state other than connected, and as a new connection time.
    assert.deepEqual(seen.map((s) => s.bridge.state).filter((state) => state !== 'connected'), [], 'the bridge never left connected');
    assert.equal(first.status().bridge.connectedSince, before.bridge.connectedSince, 'the same connection as before');
    assert.equal((await pull()).status, 200, 'the new policy applies');
    assert.equal(server!.manager.view('frank').bridgeConnected, true);
  });

  test('the next start restores the session from the store and connects by itself', async () => {
    await first.stop();
    const second = controller();
    await second.start();
    const s = await waitForStatus(second, (v) => v.trayState === 'connected', 'connected after restore');
    assert.equal(s.account.name, 'frank');
    first = second;
  });

  test('a new Ollama URL reconnects the bridge to it', async () => {
    const other = new OllamaEmulator();
    await other.start();
    try {
      const previous = settings;
      settings = { ...settings, ollamaUrl: other.url };
      await first.applySettings(previous, settings);
      await waitForStatus(first, (v) => v.trayState === 'connected', 'reconnected');
      const tokens = (await store.load())!;
      await fetch(`${server!.url}/ollama/api/version`, { headers: { authorization: `Bearer ${tokens.accessToken}` } });
      assert.ok(other.requests.some((r) => r.path === '/api/version'), 'the request went to the new Ollama');
    } finally {
      await other.close();
    }
  });

  test('sign-out stops the bridge and the proxy and forgets the tokens', async () => {
    await first.signOut();
    const s = first.status();
    assert.equal(s.trayState, 'signed-out');
    assert.equal(await store.load(), undefined);
    assert.equal(server!.manager.view('frank').status, 'stopped');
  });
});
