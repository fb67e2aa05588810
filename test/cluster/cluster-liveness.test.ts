/**
 * Peer liveness between real api-backends (server/src/cluster/peer-liveness.ts) with the members
 * a fixed list, as on the Swarm stack (CTLL_CLUSTER_MEMBERS, no DNS to drop a dead node): each
 * node probes the others over the mutual-TLS hop. A node that stops answering is SIGSTOPped (a
 * hung machine: its sockets accept, nothing answers), so nothing but the probes can tell the
 * others it is gone. Probes every 300 ms, 300 ms to answer, down after 3 misses in a row.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Bridge } from '@cloudtolocalllm/bridge';
import { FAST_BACKOFF, FAST_HEARTBEAT, waitUntil } from '../tunnel/harness.js';
import { generate, metric, startCluster, startEdge, type Cluster, type NodeProcess } from './cluster-harness.js';

const HOSTS = ['127.0.0.21', '127.0.0.22', '127.0.0.23'];
const USERS = 12;
const PROBE = { intervalMs: 500, timeoutMs: 400, failures: 3 };

describe('peer liveness over the hop, members a fixed list: a hung node dropped after 3 missed probes, back at its first answer, a flapping one kept', () => {
  let cluster: Cluster;
  let edge: Awaited<ReturnType<typeof startEdge>>;
  let live: NodeProcess[] = [];
  const users: Array<{ name: string; token: string; bridge: Bridge }> = [];

  const proxies = async (n: NodeProcess): Promise<number> => ((await (await fetch(`${n.url}/health`)).json()) as { proxies: number }).proxies;
  const allConnected = (): boolean => users.every((u) => u.bridge.status.state === 'connected');

  before(async () => {
    cluster = await startCluster(HOSTS, {
      members: 'static',
      env: { CTLL_CLUSTER_PROBE_INTERVAL_MS: String(PROBE.intervalMs), CTLL_CLUSTER_PROBE_TIMEOUT_MS: String(PROBE.timeoutMs), CTLL_CLUSTER_PROBE_FAILURES: String(PROBE.failures) },
    });
    live = [...cluster.nodes];
    edge = await startEdge(() => live);
    for (let i = 0; i < USERS; i++) {
      const name = `liveness-user-${i}`;
      const token = await cluster.signIn(name);
      const bridge = new Bridge({ proxyUrl: `${edge.url.replace(/^http/, 'ws')}/ws/bridge`, getToken: () => token, ollamaUrl: cluster.emulator.url, heartbeat: FAST_HEARTBEAT, backoff: FAST_BACKOFF });
      users.push({ name, token, bridge });
      bridge.start();
    }
    await waitUntil(allConnected, 'every bridge connects', 30_000);
    await waitUntil(async () => (await Promise.all(cluster.nodes.map((n) => metric(n, 'ctll_cluster_users_known')))).every((k) => k === USERS), 'every node knows every user', 10_000);
  });
  after(async () => {
    // A node left stopped would never exit.
    for (const n of cluster?.nodes ?? []) if (n.child.exitCode === null) n.child.kill('SIGCONT');
    await Promise.all(users.map((u) => u.bridge.stop()));
    await edge?.close();
    await cluster?.close();
  });

  test('a flapping peer (hung 900 ms of every 2.5 s: one or two probes missed each time, never three in a row) stays a member: no change, nobody moves', async () => {
    const [a, b, c] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
    const peerC = `peer="${c.member}"`;
    const changes = await Promise.all([a, b].map((n) => metric(n, 'ctll_cluster_member_changes_total')));
    const missed = await metric(a, `ctll_cluster_probe_failures_total{${peerC}}`);
    // A probe goes every 500 ms, so one is sent in each spell's first 500 ms; answered after the
    // spell ends, it is over its 400 ms (a miss). The next is sent 500 ms later and answered
    // within its 400 ms unless the machine holds the node back 500 ms more (two misses); the one
    // after that falls outside the spell. So one miss per spell, two at most, never three, with
    // half a second of room for a busy machine.
    for (let i = 0; i < 4; i++) {
      c.child.kill('SIGSTOP');
      await sleep(900);
      c.child.kill('SIGCONT');
      await sleep(1_600);
    }
    const missedNow = await metric(a, `ctll_cluster_probe_failures_total{${peerC}}`);
    assert.ok(missedNow > missed, `the hung spells were seen as missed probes (${missed} → ${missedNow}); otherwise this test proves nothing`);
    assert.deepEqual(await Promise.all([a, b].map((n) => metric(n, 'ctll_cluster_member_changes_total'))), changes, 'no member change on the other nodes');
    for (const n of [a, b]) assert.equal(await metric(n, `ctll_cluster_peer_up{${peerC}}`), 1);
    for (const n of cluster.nodes) assert.equal(await metric(n, 'ctll_cluster_bridges_moved_total'), 0, `${n.member} moved no bridge`);
    assert.ok(allConnected(), 'every bridge stayed connected');
  });

  test('a peer that stops answering is dropped after 3 missed probes and its users are served from the two left; back at its first answer, every user held by one node', async (t) => {
    const [a, b, c] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
    const peerC = `peer="${c.member}"`;
    const onC = await proxies(c);
    assert.ok(onC > 0, 'the hung node holds some users (else nothing is re-placed)');
    const started = Date.now();
    c.child.kill('SIGSTOP');
    // The edge stops sending to it, as a load balancer's health check would; the members do not know.
    live = [a, b];
    await waitUntil(async () => (await Promise.all([a, b].map((n) => metric(n, 'ctll_cluster_members')))).every((m) => m === 2), 'both others drop it', 10_000);
    const dropped = Date.now() - started;
    t.diagnostic(`dropped by both others after ${dropped} ms (probes every ${PROBE.intervalMs} ms, ${PROBE.timeoutMs} ms to answer, ${PROBE.failures} misses)`);
    // The 3rd miss in a row: at most 3 intervals and a timeout after the stop, with slack for a busy machine.
    assert.ok(dropped < PROBE.intervalMs * PROBE.failures + PROBE.timeoutMs + 2_000, `dropped after ${dropped} ms`);
    for (const n of [a, b]) assert.equal(await metric(n, `ctll_cluster_peer_up{${peerC}}`), 0);
    // Its users' bridges notice (heartbeat), reconnect through the edge and are placed on the two left.
    await waitUntil(async () => allConnected() && (await proxies(a)) + (await proxies(b)) === USERS, 'every user has a bridge and a proxy on the two left', 30_000);
    for (const [i, u] of users.entries()) assert.equal(await generate([a, b][i % 2]!, u.token), 200, `${u.name} with the node hung`);
    const served = Date.now() - started;
    t.diagnostic(`the ${onC} users of the hung node served again after ${served} ms`);
    assert.ok(served < 30_000);

    c.child.kill('SIGCONT');
    live = [a, b, c];
    await waitUntil(async () => (await Promise.all(cluster.nodes.map((n) => metric(n, 'ctll_cluster_members')))).every((m) => m === 3), 'every node counts three members again', 10_000);
    for (const n of [a, b]) assert.equal(await metric(n, `ctll_cluster_peer_up{${peerC}}`), 1);
    // The node that hung still runs its old proxies and says so: a user two nodes hold is settled
    // by rank (the loser cuts its bridge, 4005, and lets go), so in the end one node holds each.
    await waitUntil(
      async () => {
        const owned = await Promise.all(cluster.nodes.map((n) => metric(n, 'ctll_cluster_users_owned')));
        const known = await Promise.all(cluster.nodes.map((n) => metric(n, 'ctll_cluster_users_known')));
        return allConnected() && owned.reduce((x, y) => x + y, 0) === USERS && known.every((k) => k === USERS);
      },
      'every user held by exactly one node, as every node knows',
      20_000,
    );
    for (const [i, u] of users.entries()) assert.equal(await generate(cluster.nodes[i % 3]!, u.token), 200, `${u.name} after the node is back`);
    const back = await Promise.all(cluster.nodes.map((n) => metric(n, 'ctll_cluster_users_moved_total{reason="race"}')));
    t.diagnostic(`users settled by rank after it came back (per node): ${back.join('/')}`);
  });
});
