/**
 * The cloud server on a real Docker engine, through its HTTP API as users and operators meet
 * it: full flow, idle cleanup, a proxy killed from outside, 50 users at once, reconciliation
 * after the server is killed with SIGKILL (start:headless on Docker: first-run.test.ts).
 * Skipped without a Docker engine, except in CI (CI=true), where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ollama } from 'ollama';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { DEFAULT_AUDIENCE } from '@cloudtolocalllm/server/config';
import { dockerEngineSkip } from './docker-engine.js';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { waitForState, waitUntil } from '../tunnel/harness.js';
import { bearer, startCloud, type Cloud } from './cloud-harness.js';
import { spawnServer } from './server-process.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const skip = await dockerEngineSkip();

const RUN = randomBytes(3).toString('hex');
const users = new Set<string>();
const user = (name: string): string => {
  const id = `t${RUN}-${name}`;
  users.add(userHash(id));
  return id;
};

async function docker(...args: string[]): Promise<string> {
  return (await run('docker', args, { maxBuffer: 16 << 20 })).stdout.trim();
}
async function containerOf(id: string): Promise<Record<string, any> | undefined> {
  const out = await docker('ps', '-aq', '--filter', `name=^ctll-proxy-${userHash(id)}$`);
  if (!out) return undefined;
  return (JSON.parse(await docker('inspect', out)) as Array<Record<string, any>>)[0];
}
/** What is left of these users: their containers, and their networks by name or as `joined` names them (a spare's). */
async function leftovers(ids: string[], joined: string[] = []): Promise<string[]> {
  const left: string[] = [];
  for (const id of ids) {
    const h = userHash(id);
    if (await docker('ps', '-aq', '--filter', `name=^ctll-proxy-${h}$`)) left.push(`container of ${id}`);
    if (await docker('network', 'ls', '-q', '--filter', `name=^ctll-net-${h}$`)) left.push(`network of ${id}`);
  }
  for (const n of joined) if (await docker('network', 'ls', '-q', '--filter', `name=^${n}$`)) left.push(`network ${n}`);
  return left;
}
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

describe('the cloud server on Docker', { skip, concurrency: false }, () => {
  let emulator: OllamaEmulator;
  before(async () => {
    await run('bash', [`${ROOT}/scripts/build-proxy-image.sh`], { cwd: ROOT, maxBuffer: 16 << 20 });
    emulator = new OllamaEmulator({ tokenIntervalMs: 5 });
    await emulator.start();
  });
  after(async () => {
    await emulator?.close();
    for (const h of users) {
      await docker('rm', '-f', `ctll-proxy-${h}`).catch(() => '');
      await docker('network', 'rm', `ctll-net-${h}`).catch(() => '');
    }
  });

  test('full flow: sign in, start, bridge, Ollama through /ollama, stop; the container is hardened', async () => {
    const cloud = await startCloud({ runtime: 'docker' });
    try {
      const alice = user('alice');
      const token = await cloud.signIn(alice);
      const started = await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(token) });
      assert.equal(started.status, 201);
      const view = (await started.json()) as { proxyId: string; runtime: string };
      assert.equal(view.proxyId, `ctll-proxy-${userHash(alice)}`);
      assert.equal(view.runtime, 'docker');
      const c = await containerOf(alice);
      assert.ok(c, 'the container exists');
      assert.equal(c.HostConfig.Memory, 512 * 1024 * 1024);
      assert.equal(c.HostConfig.NanoCpus, 500_000_000);
      assert.equal(c.HostConfig.ReadonlyRootfs, true);
      assert.deepEqual(c.HostConfig.CapDrop, ['ALL']);
      assert.equal(c.Config.User, '1001:1001');
      assert.ok(!JSON.stringify(c).includes(alice), 'the raw user id appears nowhere in docker inspect');

      const bridge = cloud.bridge(token, emulator.url);
      bridge.start();
      await waitForState(bridge, 'connected', 60_000);
      await waitUntil(() => cloud.server.manager.view(alice).bridgeConnected, 'the server sees the bridge');
      const ollama = new Ollama({ host: `${cloud.url}/ollama`, headers: bearer(token) });
      let text = '';
      for await (const p of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: true, options: { num_predict: 6 } })) {
        text += p.message.content;
      }
      assert.equal(text.trim(), 'tok0 tok1 tok2 tok3 tok4 tok5');
      await bridge.stop();

      const stopped = await fetch(`${cloud.url}/api/proxy/stop`, { method: 'POST', headers: bearer(token) });
      assert.equal(stopped.status, 200);
      assert.deepEqual(await leftovers([alice]), [], 'stop removed the container and its network');
    } finally {
      await cloud.close();
    }
  });

  test('a proxy idle for the timeout is destroyed with its network', async () => {
    const cloud = await startCloud({ runtime: 'docker', env: { CTLL_IDLE_TIMEOUT_MS: '1500', CTLL_SWEEP_INTERVAL_MS: '250' } });
    try {
      const idle = user('idle');
      const token = await cloud.signIn(idle);
      assert.equal((await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(token) })).status, 201);
      assert.ok(await containerOf(idle));
      await waitUntil(() => cloud.server.manager.view(idle).status === 'stopped', 'the idle sweep removed it', 60_000);
      assert.deepEqual(await leftovers([idle]), []);
      assert.ok(cloud.audit.entries.some((e) => e.action === 'proxy.idle' && e.userHash === userHash(idle)));
    } finally {
      await cloud.close();
    }
  });

  test('two computers of one user on one proxy container: both listed in the status, listings united, a pin reaches one (issue 10)', async () => {
    const cloud = await startCloud({ runtime: 'docker' });
    const owner = user('two-computers');
    const second = new OllamaEmulator({ tokenIntervalMs: 5 });
    await second.start();
    second.models.add('mistral:7b');
    try {
      const token = await cloud.signIn(owner);
      const desk = cloud.bridge(token, emulator.url, { name: 'desk' });
      const lap = cloud.bridge(token, second.url, { name: 'lap' });
      desk.start();
      await waitForState(desk, 'connected', 60_000);
      lap.start();
      await waitForState(lap, 'connected', 60_000);
      const status = async (): Promise<{ computers: Array<{ name: string; models: string[] }> }> =>
        (await (await fetch(`${cloud.url}/api/proxy/status`, { headers: bearer(token) })).json()) as { computers: Array<{ name: string; models: string[] }> };
      await waitUntil(async () => (await status()).computers.filter((c) => c.models.length > 0).length === 2, 'both computers listed with their models', 30_000);
      assert.deepEqual((await status()).computers.map((c) => c.name), ['desk', 'lap']);
      const union = (await (await fetch(`${cloud.url}/ollama/api/tags`, { headers: bearer(token) })).json()) as { models: Array<{ name: string }> };
      assert.ok(union.models.some((m) => m.name === 'mistral:7b'));
      const pinned = (await (await fetch(`${cloud.url}/ollama/api/tags`, { headers: { ...bearer(token), 'X-CloudToLocalLLM-Machine': 'desk' } })).json()) as { models: Array<{ name: string }> };
      assert.ok(!pinned.models.some((m) => m.name === 'mistral:7b'), 'the pin reached the proxy in its container');
    } finally {
      await cloud.close();
      await second.close();
    }
    assert.deepEqual(await leftovers([owner]), []);
  });

  test('a proxy container killed from outside is reported, and the next start recovers', async () => {
    const cloud = await startCloud({ runtime: 'docker' });
    const victim = user('victim');
    try {
      const token = await cloud.signIn(victim);
      await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(token) });
      await docker('kill', `ctll-proxy-${userHash(victim)}`);
      await waitUntil(() => cloud.server.manager.view(victim).status === 'stopped', 'the server noticed the death', 60_000);
      const exit = cloud.audit.entries.find((e) => e.action === 'proxy.exit' && e.userHash === userHash(victim));
      assert.ok(exit, 'the death is in the audit log');
      assert.equal(exit.reason, 'the proxy container died (exit code 137, killed with SIGKILL)');
      const again = await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(token) });
      assert.equal(again.status, 201);
      assert.equal(((await again.json()) as { health: { ok: boolean } }).health.ok, true);
    } finally {
      await cloud.close();
    }
    assert.deepEqual(await leftovers([victim]), [], 'closing the server removed its proxies');
  });

  test('50 users provisioned at once get 50 proxies on 50 distinct subnets', async () => {
    const cloud = await startCloud({ runtime: 'docker', env: { CTLL_RATE_BURST: '1000' } });
    const ids = Array.from({ length: 50 }, (_, i) => user(`crowd${i}`));
    const joined: string[] = [];
    try {
      const tokens = await Promise.all(ids.map((id) => cloud.signIn(id)));
      const answers = await Promise.all(tokens.map((t) => fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(t) })));
      const statuses = answers.map((a) => a.status);
      assert.deepEqual(statuses.filter((s) => s !== 201), [], 'every start succeeded');
      const subnets = new Set<string>();
      for (const id of ids) {
        // The network the user's container joined: its own, or the spare's it was taken from.
        const network = (await containerOf(id))!['HostConfig'].NetworkMode as string;
        joined.push(network);
        const n = JSON.parse(await docker('network', 'inspect', network)) as Array<{ IPAM: { Config: Array<{ Subnet: string }> } }>;
        subnets.add(n[0]!.IPAM.Config[0]!.Subnet);
      }
      assert.equal(subnets.size, 50, 'fifty distinct subnets (Docker\'s own pools stop near 29)');
    } finally {
      await cloud.close();
    }
    assert.deepEqual(await leftovers(ids, joined), [], 'closing the server removed all 50');
  });

  test('after the server is killed with SIGKILL, a new one adopts healthy proxies and prunes leftovers', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const signIn = async (issuer: string, id: string): Promise<string> =>
      (await headlessSignIn({ issuer, clientId: 'cloudtolocalllm-desktop', audience: DEFAULT_AUDIENCE, username: id })).accessToken;

    const first = await spawnServer(port);
    const [u1, u2] = [user('survivor1'), user('survivor2')];
    const ids: Record<string, string> = {};
    for (const id of [u1, u2]) {
      const res = await fetch(`${url}/api/proxy/start`, { method: 'POST', headers: bearer(await signIn(first.issuer, id)) });
      assert.equal(res.status, 201);
      ids[id] = (await containerOf(id))!.Id as string;
    }
    // What a crash mid-provisioning leaves: a labelled user network without its container.
    const orphanOwner = userHash(user('orphan'));
    await docker('network', 'create', '--internal', '--label', 'cloudtolocalllm.type=user-network', '--label', `cloudtolocalllm.owner=${orphanOwner}`, `ctll-net-${orphanOwner}`);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    assert.ok(await containerOf(u1), 'the proxies outlive the killed server');

    const second = await spawnServer(port);
    try {
      assert.equal(await docker('network', 'ls', '-q', '--filter', `name=^ctll-net-${orphanOwner}$`), '', 'the orphaned network was pruned');
      for (const id of [u1, u2]) {
        const res = await fetch(`${url}/api/proxy/start`, { method: 'POST', headers: bearer(await signIn(second.issuer, id)) });
        assert.equal(res.status, 200, 'the adopted proxy is already running');
        assert.equal((await containerOf(id))!.Id, ids[id], 'the same container, not a new one');
      }
      assert.match(second.log(), /"action":"proxy.adopt"/);
    } finally {
      second.child.kill('SIGTERM');
      await new Promise((r) => second.child.once('exit', r));
    }
    assert.deepEqual(await leftovers([u1, u2]), [], 'a clean shutdown leaves nothing behind');
  });
});
