/**
 * The load bound across real api-backends (docs/scaling.md, "routing with the bound"): 60 users
 * sign in and connect their bridges through all three nodes; each node publishes the users it
 * holds to the others over the mutual-TLS hop, and every new bridge is placed under the bound,
 * so the proxies land within 20% of even (what plain rendezvous would have done is printed
 * beside it; it depends on the port the run picked). Then one node is killed: its users are served from the two left within 30 s,
 * and nobody else moves.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { Bridge } from '@cloudtolocalllm/bridge';
import { routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { capacity, ownerOf } from '@cloudtolocalllm/server/cluster/owner-map';
import { ROUTING_EPSILON } from '@cloudtolocalllm/server/cluster/placements';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { FAST_BACKOFF, FAST_HEARTBEAT, waitUntil } from '../tunnel/harness.js';
import { generate, metric, startCluster, startEdge, type Cluster, type NodeProcess } from './cluster-harness.js';

const HOSTS = ['127.0.0.5', '127.0.0.6', '127.0.0.7'];
const USERS = 60;

describe('three api-backends: 60 users spread within 20% of even, a node killed and its users served again', () => {
  let cluster: Cluster;
  let edge: Awaited<ReturnType<typeof startEdge>>;
  let live: NodeProcess[] = [];
  const users: Array<{ name: string; token: string; bridge: Bridge }> = [];

  const health = async (n: NodeProcess): Promise<{ proxies: number }> => (await (await fetch(`${n.url}/health`)).json()) as { proxies: number };
  const proxiesPerNode = async (nodes: NodeProcess[]): Promise<number[]> => Promise.all(nodes.map(async (n) => (await health(n)).proxies));

  before(async () => {
    cluster = await startCluster(HOSTS);
    live = [...cluster.nodes];
    edge = await startEdge(() => live);
  });
  after(async () => {
    await Promise.all(users.map((u) => u.bridge.stop()));
    await edge?.close();
    await cluster?.close();
  });

  test(`${USERS} users signing in across the three nodes land within 20% of even`, async (t) => {
    const entries = cluster.nodes;
    // Three users at a time through the edge, which hands each connection to the next node:
    // each batch's three placements are made by three nodes at once, each not yet knowing the
    // other two. Between batches the lists travel (every node knows every user placed so far),
    // so what a race can add is bounded by one batch: entries - 1 over the bound, on one member.
    const knownEverywhere = async (n: number): Promise<void> =>
      waitUntil(async () => (await Promise.all(entries.map((e) => metric(e, 'ctll_cluster_users_known')))).every((k) => k === n), `every node knows the ${n} users placed so far`, 10_000);
    for (let i = 0; i < USERS; i += entries.length) {
      const batch = entries.map(async (_entry, j) => {
        const name = `spread-user-${i + j}`;
        const token = await cluster.signIn(name);
        const bridge = new Bridge({
          proxyUrl: `${edge.url.replace(/^http/, 'ws')}/ws/bridge`,
          getToken: () => token,
          ollamaUrl: cluster.emulator.url,
          heartbeat: FAST_HEARTBEAT,
          backoff: FAST_BACKOFF,
        });
        users.push({ name, token, bridge });
        bridge.start();
        await waitUntil(() => bridge.status.state === 'connected', `${name}'s bridge connects`, 20_000);
      });
      await Promise.all(batch);
      await knownEverywhere(users.length);
    }
    const counts = await proxiesPerNode(entries);
    const plain = cluster.members(HOSTS).map((m) => users.filter((u) => ownerOf(cluster.members(HOSTS), routeOf(userHash(u.name))) === m).length);
    t.diagnostic(`proxies per node: ${counts.join('/')} (plain rendezvous would be ${plain.join('/')})`);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      USERS,
      'every user has one proxy, on one node',
    );
    const even = USERS / entries.length;
    for (const [i, c] of counts.entries()) assert.ok(Math.abs(c - even) <= 0.2 * even, `${entries[i]!.member} runs ${c} proxies of ${USERS}`);
    const bound = capacity(USERS, entries.length, ROUTING_EPSILON);
    const race = entries.length - 1;
    for (const c of counts) assert.ok(c <= bound + race, `${c} over the bound ${bound} by more than one batch's race (${race})`);
    // Each node's /metrics: the users it holds, and all 60 known cluster-wide (published lists).
    assert.deepEqual(await Promise.all(entries.map((n) => metric(n, 'ctll_cluster_users_owned'))), counts);
    const placed = await Promise.all(entries.map(async (n) => (await metric(n, 'ctll_cluster_users_placed_total{choice="first"}')) + (await metric(n, 'ctll_cluster_users_placed_total{choice="bounded"}'))));
    assert.ok(
      placed.reduce((a, b) => a + b, 0) >= USERS,
      `every user's first bridge was placed by its entry: ${placed.join('/')}`,
    );
    // Every node routes a request for each user to the node that holds it: a request through
    // each entry succeeds (a wrong owner would have no bridge and answer 503).
    for (const [i, u] of users.entries()) assert.equal(await generate(entries[(i + 1) % entries.length]!, u.token), 200, u.name);
  });

  test('the users lists travel between peers only: refused on the public listener, checked on the peer one', async () => {
    const n = cluster.nodes[0]!;
    // Steady first: a list still travelling would change the count this test reads twice.
    await waitUntil(async () => (await metric(n, 'ctll_cluster_users_known')) === USERS, 'the node knows every user', 10_000);
    const known = await metric(n, 'ctll_cluster_users_known');
    const forged = JSON.stringify({ member: n.member.replace(/\.\d+:/, '.99:'), routes: [routeOf(userHash('forged'))] });
    const pub = await fetch(`${n.url}/cluster/placements`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: forged });
    assert.equal(pub.status, 404, 'a client cannot publish placements');
    const asPeer = (method: string, body: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const [host, port] = n.member.split(':');
        const req = https.request(
          { host, port: Number(port), method, path: '/cluster/placements', ca: readFileSync(cluster.ca.file('ca.pem')), cert: readFileSync(cluster.ca.file('n2.pem')), key: readFileSync(cluster.ca.file('n2-key.pem')), checkServerIdentity: () => undefined },
          (res) => {
            let text = '';
            res.setEncoding('utf8').on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    assert.deepEqual(await asPeer('PUT', '{"member":"x"}'), { status: 400, body: JSON.stringify({ error: 'the placements list\'s member "x" is not host:port' }) });
    assert.equal((await asPeer('PUT', 'not json')).status, 400);
    assert.equal((await asPeer('GET', '')).status, 405);
    // A list from an address that is no member is taken but counts for nothing.
    assert.equal((await asPeer('PUT', forged)).status, 204);
    assert.equal(await metric(n, 'ctll_cluster_users_known'), known);
  });

  test("a node killed: its users are served from the two left within 30 s, nobody else moves", async (t) => {
    const [a, b, killed] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
    const before = await proxiesPerNode([a, b]);
    const killedCount = (await health(killed)).proxies;
    const started = Date.now();
    await killed.stop('SIGKILL');
    live = [a, b];
    cluster.setLive(HOSTS.slice(0, 2));
    await waitUntil(
      async () => {
        const now = await proxiesPerNode([a, b]);
        return now[0]! + now[1]! === USERS && users.every((u) => u.bridge.status.state === 'connected');
      },
      'every user has a proxy and a bridge on the two left',
      30_000,
    ).catch(async (e: Error) => {
      const states = users.filter((u) => u.bridge.status.state !== 'connected').map((u) => `${u.name}: ${u.bridge.status.state} ${u.bridge.status.reason ?? ''}`);
      throw new Error(`${e.message}; proxies ${(await proxiesPerNode([a, b])).join('/')}; not connected: ${states.slice(0, 5).join('; ')}`);
    });
    for (const [i, u] of users.entries()) assert.equal(await generate([a, b][i % 2]!, u.token), 200, `${u.name} after the loss`);
    const elapsed = Date.now() - started;
    t.diagnostic(`the ${killedCount} users of the killed node served again after ${elapsed} ms`);
    assert.ok(elapsed < 30_000, `served again after ${elapsed} ms`);
    const now = await proxiesPerNode([a, b]);
    assert.ok(now[0]! >= before[0]! && now[1]! >= before[1]!, `the survivors kept their users: ${before.join('/')} → ${now.join('/')}`);
    for (const n of [a, b]) assert.equal(await metric(n, 'ctll_cluster_bridges_moved_total'), 0, `${n.member} moved none of its own bridges`);
    assert.equal(await metric(a, 'ctll_cluster_users_known'), USERS);
  });
});
