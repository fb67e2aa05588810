/**
 * Three api-backends as real processes, members of one cluster through DNS (a stub in place of
 * Swarm's `tasks.<service>`), the hop between them mutual TLS from a CA made by
 * scripts/deploy/make-cluster-ca.sh, the emulator as the users' Ollama, one embedded issuer.
 * A user's bridge and requests land on nodes that do not own the user and are served by the
 * owner's streaming proxy; a membership change moves the user's bridge to the new owner.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { Bridge } from '@cloudtolocalllm/bridge';
import { KeyRing } from '@cloudtolocalllm/bridge/keys/key-ring';
import { KeyStore } from '@cloudtolocalllm/bridge/keys/key-store';
import type { BridgeStatus } from '@cloudtolocalllm/bridge/supervisor/status';
import { routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { REFUSAL_HEADER } from '@cloudtolocalllm/bridge/connection/protocol';
import type { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { ownerOf } from '@cloudtolocalllm/server/cluster/owner-map';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { reforge } from '../keys/keys-harness.js';
import { FAST_BACKOFF, FAST_HEARTBEAT, waitUntil } from '../tunnel/harness.js';
import { makeClusterCa, startCluster, type Cluster, type NodeProcess } from './cluster-harness.js';

const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];

describe('three api-backends: ownership, the authenticated hop, a membership change', () => {
  let cluster: Cluster;
  let outsider: ReturnType<typeof makeClusterCa>;
  let emulator: OllamaEmulator;
  let nodes: NodeProcess[] = [];
  let port: number;
  let ca: Cluster['ca'];
  const bridges: Bridge[] = [];
  const keyDir = mkdtempSync(join(tmpdir(), 'ctll-cluster-keys-'));
  let keyRing: KeyRing | undefined;
  let clientKey: string;

  const node = (member: string): NodeProcess => cluster.node(member);
  const members = (hosts: string[]): string[] => cluster.members(hosts);
  const ownerOfUser = (name: string, live: string[]): string => ownerOf(live, routeOf(userHash(name)))!;
  const signIn = (username: string): Promise<string> => cluster.signIn(username);
  const health = async (n: NodeProcess): Promise<{ proxies: number }> => (await (await fetch(`${n.url}/health`)).json()) as { proxies: number };
  const generate = async (n: NodeProcess, token: string): Promise<{ status: number; lines: string[] }> => {
    const res = await fetch(`${n.url}/ollama/api/generate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama3.2', prompt: 'hello', options: { num_predict: 20 } }),
    });
    return { status: res.status, lines: (await res.text()).split('\n').filter(Boolean) };
  };

  before(async () => {
    outsider = makeClusterCa(['stranger']);
    cluster = await startCluster(HOSTS);
    ({ emulator, nodes, port, ca } = cluster);
  });
  after(async () => {
    await Promise.all(bridges.map((b) => b.stop()));
    keyRing?.close();
    rmSync(keyDir, { recursive: true, force: true });
    await cluster?.close();
    outsider?.remove();
  });

  // A user owned by the second node; their bridge enters at the node that owns them neither
  // now nor once the owner has left, so it stays the entry through both moves below.
  const user = (): { name: string; owner: string; next: string; entry: string } => {
    const all = members(HOSTS);
    for (let i = 0; ; i++) {
      const name = `swarm-user-${i}`;
      const owner = ownerOfUser(name, all);
      if (owner !== all[1]) continue;
      const next = ownerOfUser(name, all.filter((m) => m !== owner));
      const entry = all.find((m) => m !== owner && m !== next)!;
      return { name, owner, next, entry };
    }
  };
  let u: ReturnType<typeof user>;
  let token: string;
  const statuses: BridgeStatus[] = [];

  test('a bridge landing on a node that does not own its user reaches the owner\'s streaming proxy', async () => {
    u = user();
    token = await signIn(u.name);
    const store = new KeyStore(keyDir);
    store.recordSignIn(userHash(u.name));
    clientKey = store.create({ name: 'laptop' }).key;
    keyRing = new KeyRing(store);
    keyRing.start();
    const bridge = new Bridge({
      keys: keyRing,
      proxyUrl: `${node(u.entry).url.replace(/^http/, 'ws')}/ws/bridge`,
      getToken: () => token,
      ollamaUrl: emulator.url,
      heartbeat: FAST_HEARTBEAT,
      backoff: FAST_BACKOFF,
    });
    bridges.push(bridge);
    bridge.on('status', (s) => statuses.push(s));
    bridge.start();
    await waitUntil(() => bridge.status.state === 'connected', 'the bridge connects', 20_000);
    assert.equal((await health(node(u.owner))).proxies, 1, 'the owner runs the user\'s proxy');
    assert.equal((await health(node(u.entry))).proxies, 0, 'the entry node runs none');
    assert.equal((await health(node(u.next))).proxies, 0);
    const view = (await (await fetch(`${node(u.entry).url}/health`)).json()) as { cluster: { self: string; members: string[]; live: string[] } };
    assert.deepEqual(view.cluster, { self: u.entry, members: members(HOSTS), live: members(HOSTS) }, '/health names the node, the members it sees and those of them live');
  });

  test('an Ollama request landing on a non-owner is streamed from the owner\'s proxy, both ways', async () => {
    for (const at of [u.entry, u.next]) {
      const answer = await generate(node(at), token);
      assert.equal(answer.status, 200, `through ${at}`);
      assert.ok(answer.lines.length >= 20, `streamed line by line through ${at}: ${answer.lines.length} lines`);
      assert.equal((JSON.parse(answer.lines.at(-1)!) as { done: boolean }).done, true);
    }
    // A client key names only its user's routing part: every node finds the owner from it.
    const keyed = await fetch(`${node(u.next).url}/ollama/api/tags`, { headers: { authorization: `Bearer ${clientKey}` } });
    assert.equal(keyed.status, 200, 'a client key through a non-owner');
    const wrong = await fetch(`${node(u.entry).url}/ollama/api/tags`, { headers: { authorization: `Bearer ${reforge(clientKey, { secret: Buffer.alloc(32, 9) })}` } });
    assert.equal(wrong.status, 401, "a wrong secret is refused by the owner's proxy");
    assert.equal(wrong.headers.get(REFUSAL_HEADER), 'key-invalid');
    assert.match(wrong.headers.get('www-authenticate') ?? '', /invalid_token/, 'the owner\'s challenge comes back through the hop');
    const status = await fetch(`${node(u.next).url}/api/proxy/status`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(((await status.json()) as { bridgeConnected: boolean }).bridgeConnected, true, 'the JSON API hops too');
  });

  test('the peer listener refuses a connection without a certificate of the stack\'s CA', async () => {
    const ask = (options: https.RequestOptions): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = https.request({ host: HOSTS[1], port, path: '/health', ca: readFileSync(ca.file('ca.pem')), checkServerIdentity: () => undefined, ...options }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    // With a node's certificate the same request is served: the refusals below are the certificate's.
    assert.equal(await ask({ cert: readFileSync(ca.file('n1.pem')), key: readFileSync(ca.file('n1-key.pem')) }), 200);
    await assert.rejects(ask({}), /certificate required|ECONNRESET|socket hang up/i, 'no client certificate');
    await assert.rejects(ask({ cert: readFileSync(outsider.file('stranger.pem')), key: readFileSync(outsider.file('stranger-key.pem')) }), /unknown ca|ECONNRESET|socket hang up/i, 'another CA\'s certificate');
  });

  test('a peer\'s identity is believed by the owner only; another node answers owner-moving, never forwards it on', async () => {
    const asPeer = (member: string, path: string): Promise<{ status: number; refusal: string | undefined }> =>
      new Promise((resolve, reject) => {
        const [host, p] = member.split(':');
        const req = https.request(
          {
            host,
            port: Number(p),
            path,
            ca: readFileSync(ca.file('ca.pem')),
            cert: readFileSync(ca.file('n1.pem')),
            key: readFileSync(ca.file('n1-key.pem')),
            checkServerIdentity: () => undefined,
            headers: { 'x-cloudtolocalllm-cluster-subject': encodeURIComponent(u.name), 'x-cloudtolocalllm-cluster-address': '198.51.100.7' },
          },
          (res) => {
            res.resume();
            const refusal = res.headers[REFUSAL_HEADER];
            resolve({ status: res.statusCode ?? 0, refusal: typeof refusal === 'string' ? refusal : undefined });
          },
        );
        req.on('error', reject);
        req.end();
      });
    // No token at all: the peer's word names the user, and the owner serves them.
    assert.equal((await asPeer(u.owner, '/ollama/api/tags')).status, 200);
    assert.deepEqual(await asPeer(u.next, '/ollama/api/tags'), { status: 503, refusal: 'owner-moving' });
  });

  test('a client cannot claim an identity: the cluster headers are refused on the public listener', async () => {
    const other = await signIn('swarm-intruder');
    for (const headers of [{ 'x-cloudtolocalllm-cluster-subject': u.name }, { 'x-cloudtolocalllm-cluster-subject': u.name, authorization: `Bearer ${other}` }] as Array<Record<string, string>>) {
      for (const n of nodes) {
        const res = await fetch(`${n.url}/ollama/api/tags`, { headers });
        assert.equal(res.status, 403, `${n.member}`);
        assert.equal(res.headers.get(REFUSAL_HEADER), 'peer-only');
      }
    }
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${node(u.owner).url.replace(/^http/, 'ws')}/ws/bridge`, { headers: { 'x-cloudtolocalllm-cluster-subject': u.name } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('a forged identity opened a tunnel')));
      ws.on('error', () => undefined);
    });
    assert.equal(status, 403);
  });

  test('the owner leaving the members: its bridge is told to reconnect (4005) and lands on the new owner', async () => {
    const seen = statuses.length;
    cluster.setLive(HOSTS.filter((h) => `${h}:${port}` !== u.owner));
    await waitUntil(() => statuses.slice(seen).some((s) => s.state !== 'connected' && /moved this account to another/.test(s.reason ?? '')), 'the bridge is told its account moved', 20_000);
    await waitUntil(() => statuses.slice(seen).some((s, i, a) => s.state === 'connected' && i > 0 && a[i - 1]!.state !== 'connected'), 'the bridge connects again', 20_000);
    await waitUntil(async () => (await health(node(u.next))).proxies === 1, 'the new owner runs the proxy', 20_000);
    const answer = await generate(node(u.owner), token);
    assert.equal(answer.status, 200, 'the old owner, now a plain entry, forwards to the new owner');
    const metrics = await (await fetch(`${node(u.owner).url}/metrics`)).text();
    assert.equal(/^ctll_cluster_bridges_moved_total (\S+)$/m.exec(metrics)?.[1], '1', 'the old owner counts the bridge it moved, once');
    assert.match(metrics, /^ctll_cluster_members 2$/m);
    assert.equal((await generate(node(u.entry), token)).status, 200);
  });

  test('the new owner killed: the bridge reconnects and is served by the node left', async () => {
    const seen = statuses.length;
    await node(u.next).stop('SIGKILL');
    cluster.setLive([u.entry.split(':')[0]!]);
    await waitUntil(() => statuses.slice(seen).some((s, i, a) => s.state === 'connected' && i > 0 && a[i - 1]!.state !== 'connected'), 'the bridge connects again', 30_000);
    await waitUntil(async () => (await health(node(u.entry))).proxies === 1, 'the entry node now runs the proxy', 20_000);
    assert.equal((await generate(node(u.entry), token)).status, 200);
    assert.equal((await generate(node(u.owner), token)).status, 200, 'a node outside the members still forwards to the owner');
  });
});
