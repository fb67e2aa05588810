/**
 * The cluster's hop (docs/scaling.md): what a request pays when it lands on an api-backend that
 * does not own its user and is forwarded, over mutual TLS, to the one that does.
 *
 * Three api-backends run as processes on 127.0.0.11-13 the way the cluster test runs them
 * (test/cluster/cluster-harness.ts: members from a DNS stub standing in for Swarm's
 * `tasks.<service>`, peer TLS from the deploy script's CA, one embedded issuer, the emulator as
 * the users' Ollama). Three paths, interleaved in the same run (the order rotates each round):
 *
 *   owner      user A's request sent to A's owner, where A's bridge is connected: no hop
 *   non-owner  user A's request sent to another node, which forwards it to A's owner
 *   bridge     user B's request sent to B's owner, B's bridge connected through another node
 *              (its tunnel spliced over the hop): what a bridge that entered elsewhere costs
 *
 * and two workloads on each:
 *
 *   small   GET /ollama/api/tags with the user's token: time to the whole answer
 *   stream  POST /ollama/api/generate, --tokens token lines: time to the first line and to the end
 *
 * The client is this process, one keep-alive connection per path. Figures are p50 and p99 in
 * ms, the non-owner's as a ratio of the owner's, and the added latency (non-owner minus owner
 * at the same quantile). A benchmark reports; it never fails the build.
 *
 *   npm run bench:cluster-hop [-- --samples 1000] [--streams 200] [--tokens 20] [--quick] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Bridge } from '@cloudtolocalllm/bridge';
import { routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { ownerOf } from '@cloudtolocalllm/server/cluster/owner-map';
import { startCluster, type Cluster, type NodeProcess } from '../test/cluster/cluster-harness.js';
import { wholeNumber } from './args.js';
import { fmt, quantile, ratio, table } from './stats.js';
import { call, makeTarget, settle, type Target } from './workloads.js';

const { values: args } = parseArgs({
  options: {
    samples: { type: 'string', default: '1000' },
    streams: { type: 'string', default: '200' },
    tokens: { type: 'string', default: '20' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (args.help) {
  process.stdout.write('usage: npm run bench:cluster-hop [-- --samples N] [--streams N] [--tokens N] [--quick] [--json FILE]\n');
  process.exit(0);
}
const SAMPLES = args.quick ? 100 : wholeNumber('samples', args.samples);
const STREAMS = args.quick ? 20 : wholeNumber('streams', args.streams);
const TOKENS = wholeNumber('tokens', args.tokens);
const WARMUP = Math.min(300, SAMPLES);
const HOSTS = ['127.0.0.11', '127.0.0.12', '127.0.0.13'];
const USER = 'bench-hop-user';
const BRIDGE_USER = 'bench-hop-bridge-user';

const log = (line = ''): void => void process.stdout.write(line + '\n');

interface Samples {
  small: number[];
  streamFirst: number[];
  streamEnd: number[];
}

async function small(t: Target): Promise<number> {
  const c = await call(t, { method: 'GET', path: '/ollama/api/tags' });
  if (c.status !== 200) throw new Error(`${t.name}: GET /ollama/api/tags answered ${c.status}`);
  await settle();
  return c.endedAt - c.startedAt;
}

async function stream(t: Target): Promise<{ first: number; end: number }> {
  let first = 0;
  const c = await call(t, {
    method: 'POST',
    path: '/ollama/api/generate',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'llama3.2', prompt: 'benchmark', stream: true, options: { num_predict: TOKENS } }),
    onLines: (n) => {
      if (n >= 1 && first === 0) first = Number(process.hrtime.bigint()) / 1e6;
    },
  });
  if (c.status !== 200 || c.lines !== TOKENS + 1) throw new Error(`${t.name}: the stream answered ${c.status} with ${c.lines} lines, expected ${TOKENS + 1}`);
  await settle();
  return { first: first - c.startedAt, end: c.endedAt - c.startedAt };
}

const health = async (n: NodeProcess): Promise<number> => ((await (await fetch(`${n.url}/health`)).json()) as { proxies: number }).proxies;

async function main(): Promise<void> {
  let cluster: Cluster | undefined;
  const bridges: Bridge[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(bridges.map((b) => b.stop()));
    await cluster?.close();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    log(`starting three api-backends on ${HOSTS.join(', ')} ...`);
    // The emulator's token interval is 5 ms: a stream's first line is a model's first token.
    // The per-user rate limit (20/s) would meter the benchmark's back-to-back requests, not the hop.
    cluster = await startCluster(HOSTS, { intervalMs: 1000, env: { CTLL_RATE_PER_SECOND: '100000', CTLL_RATE_BURST: '1000000' } });
    const c = cluster;
    const connect = async (user: string, entry: NodeProcess, placed?: { token: string; owner: NodeProcess }): Promise<{ token: string; bridge: Bridge; owner: NodeProcess }> => {
      const token = placed?.token ?? (await c.signIn(user));
      const before = await Promise.all(c.nodes.map(health));
      const bridge = new Bridge({ proxyUrl: `${entry.url.replace(/^http/, 'ws')}/ws/bridge`, getToken: () => token, ollamaUrl: c.emulator.url });
      bridges.push(bridge);
      bridge.start();
      const deadline = Date.now() + 30_000;
      while (bridge.status.state !== 'connected') {
        if (Date.now() > deadline) throw new Error(`${user}'s bridge did not connect: ${bridge.status.state} ${bridge.status.reason ?? ''}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const after = await Promise.all(c.nodes.map(health));
      // Placed already: the proxy stays where it runs, and nothing starts anywhere else.
      if (placed) return after.every((n, i) => n === before[i]) ? { token, bridge, owner: placed.owner } : Promise.reject(new Error(`${user} moved: ${before.join('/')} → ${after.join('/')}`));
      const owner = c.nodes[after.findIndex((n, i) => n === before[i]! + 1)];
      if (!owner) throw new Error(`${user}'s proxy did not start on one node: ${before.join('/')} → ${after.join('/')}`);
      return { token, bridge, owner };
    };
    // A's bridge goes straight to A's owner (the first user of an empty cluster is placed on its
    // rendezvous first choice), so A's requests take the hop, not A's tunnel as well.
    const a = await connect(USER, c.node(ownerOf(c.members(HOSTS), routeOf(userHash(USER)))!));
    const other = c.nodes.find((n) => n !== a.owner)!;
    // B's bridge enters at a node that is not B's owner (placed once, B stays where it is).
    let b = await connect(BRIDGE_USER, c.nodes.find((n) => n !== a.owner)!);
    const bridgeEntry = c.nodes.find((n) => n !== b.owner)!;
    await b.bridge.stop();
    bridges.splice(bridges.indexOf(b.bridge), 1);
    b = await connect(BRIDGE_USER, bridgeEntry, b);
    log(`A's proxy runs on ${a.owner.member}, the non-owner measured is ${other.member}; B's proxy on ${b.owner.member}, its bridge through ${bridgeEntry.member}`);
    const paths = {
      owner: makeTarget('owner', a.owner.url, { authorization: `Bearer ${a.token}` }),
      hop: makeTarget('non-owner', other.url, { authorization: `Bearer ${a.token}` }),
      bridge: makeTarget('bridge', b.owner.url, { authorization: `Bearer ${b.token}` }),
    };
    const KEYS = ['owner', 'hop', 'bridge'] as const;
    const out = Object.fromEntries(KEYS.map((k) => [k, { small: [], streamFirst: [], streamEnd: [] }])) as unknown as Record<(typeof KEYS)[number], Samples>;
    const rotated = (i: number): Array<(typeof KEYS)[number]> => [...KEYS.slice(i % 3), ...KEYS.slice(0, i % 3)];

    log(`warming up (${WARMUP} small requests and ${Math.min(20, STREAMS)} streams per path) ...`);
    for (let i = 0; i < WARMUP; i++) for (const k of KEYS) await small(paths[k]);
    for (let i = 0; i < Math.min(20, STREAMS); i++) for (const k of KEYS) await stream(paths[k]);

    log(`measuring ${SAMPLES} small requests and ${STREAMS} streams of ${TOKENS} tokens per path, interleaved ...`);
    for (let i = 0; i < SAMPLES; i++) for (const k of rotated(i)) out[k].small.push(await small(paths[k]));
    for (let i = 0; i < STREAMS; i++) {
      for (const k of rotated(i)) {
        const s = await stream(paths[k]);
        out[k].streamFirst.push(s.first);
        out[k].streamEnd.push(s.end);
      }
    }

    const rows: string[][] = [];
    const summary: Record<string, unknown> = {};
    for (const [key, what] of [
      ['small', 'small request (GET /ollama/api/tags), whole answer'],
      ['streamFirst', `stream (${TOKENS} tokens), first line`],
      ['streamEnd', `stream (${TOKENS} tokens), last line`],
    ] as const) {
      for (const q of [0.5, 0.99]) {
        const o = quantile(out.owner[key], q);
        const h = quantile(out.hop[key], q);
        const br = quantile(out.bridge[key], q);
        rows.push([`${what}, p${q * 100}`, fmt(o), fmt(h), ratio(h, o), fmt(h - o), fmt(br), ratio(br, o), fmt(br - o)]);
        summary[`${key}.p${q * 100}`] = { owner: o, nonOwner: h, bridgeHop: br, addedMs: h - o, bridgeAddedMs: br - o };
      }
    }
    log();
    log(table(['ms', 'owner', 'non-owner', 'ratio', 'added', 'bridge hop', 'ratio', 'added'], rows));
    log();
    log(`client connections opened: ${KEYS.map((k) => `${k} ${paths[k].connections}`).join(', ')} (keep-alive: 1 each expected)`);
    if (args.json) writeFileSync(args.json, JSON.stringify({ samples: SAMPLES, streams: STREAMS, tokens: TOKENS, summary, raw: out }, null, 2));
    for (const t of Object.values(paths)) t.agent.destroy();
  } finally {
    await stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:cluster-hop could not run: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
