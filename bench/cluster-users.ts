/**
 * What the cluster's own bookkeeping costs a node as users and nodes are added (docs/scaling.md,
 * "Users per node"). A node's capacity is its proxies (bench:proxies: about a thousand per
 * machine); this measures whether anything the cluster layer adds grows into a limit before that:
 *
 *   change   a bridge opens or closes here: the table's index is rebuilt on the next lookup
 *            (every member's published users), then one owner lookup: ms per change
 *   place    a new user's bridge placed under the bound (rendezvous over the members plus every
 *            member's load): µs per placement, right after a change (the worst case)
 *   lookup   a placed user's owner, index warm: µs per lookup (every relayed request pays this)
 *   heard    a peer's list arrives (every interval, and soon after its changes), one user
 *            different from its last: ms to take it in
 *   publish  this node's list as sent to each peer every interval and after changes: bytes, and
 *            the ms to encode it and, on the peer, to read and check it
 *
 * for each (members, users per node). The table and the list's reader are the server's own
 * (server/src/cluster/placements.ts, placement-exchange.ts), fed with routing parts made the
 * way the gateway makes them. In-process and single-threaded: the figures are CPU time on one
 * core. A benchmark reports; it never fails the build.
 *
 *   npm run bench:cluster-users [-- --members 3,10,30] [--users 1000,5000] [--rounds 50] [--json FILE]
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { parseArgs } from 'node:util';
import { routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { readPlacements } from '@cloudtolocalllm/server/cluster/placement-exchange';
import { PlacementTable } from '@cloudtolocalllm/server/cluster/placements';
import { wholeNumber, wholeNumbers } from './args.js';
import { fmt, quantile, table } from './stats.js';

const { values: args } = parseArgs({
  options: {
    members: { type: 'string', default: '3,10,30' },
    users: { type: 'string', default: '1000,5000' },
    rounds: { type: 'string', default: '50' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (args.help) {
  process.stdout.write('usage: npm run bench:cluster-users [-- --members 3,10,30] [--users 1000,5000] [--rounds 50] [--json FILE]\n');
  process.exit(0);
}
const MEMBER_COUNTS = wholeNumbers('members', args.members);
const USER_COUNTS = wholeNumbers('users', args.users);
const ROUNDS = wholeNumber('rounds', args.rounds);
if (MEMBER_COUNTS.some((m) => m < 2)) throw new Error('--members: a cluster has at least 2 members');

const newRoute = (): string => routeOf(randomBytes(32).toString('hex'));
const ms = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;

interface Row {
  members: number;
  usersPerNode: number;
  changeMs: { p50: number; p99: number };
  placeUs: { p50: number; p99: number };
  lookupUs: number;
  heardMs: number;
  publishBytes: number;
  encodeMs: number;
  readMs: number;
}

async function measure(members: number, perNode: number): Promise<Row> {
  const names = Array.from({ length: members }, (_, i) => `10.0.${i >> 8}.${i & 255}:7443`);
  const self = names[0]!;
  const table = new PlacementTable({ provisionalMs: 60_000 });
  table.setView(names, self);
  const local = Array.from({ length: perNode }, newRoute);
  table.setLocal(local);
  const placed: string[] = [...local];
  for (const peer of names.slice(1)) {
    const routes = Array.from({ length: perNode }, newRoute);
    placed.push(...routes);
    table.setPeer(peer, routes);
  }
  table.owner(placed[0]!);

  const change: number[] = [];
  const place: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    // A bridge opened here (one more local user): what the next request pays.
    const opened = newRoute();
    let t = process.hrtime.bigint();
    table.setLocal([...local, opened]);
    table.owner(placed[i % placed.length]!);
    change.push(ms(t));
    // A new user's bridge arriving right after a change: placement over fresh loads.
    table.setLocal(local);
    t = process.hrtime.bigint();
    table.place(newRoute());
    place.push(ms(t) * 1000);
  }

  const lookups = 100_000;
  table.owner(placed[0]!);
  let t = process.hrtime.bigint();
  for (let i = 0; i < lookups; i++) table.owner(placed[i % placed.length]!);
  const lookupUs = (ms(t) * 1000) / lookups;

  const peer = names[1]!;
  const peerRoutes = placed.slice(perNode, 2 * perNode);
  const heard: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    peerRoutes[i % perNode] = newRoute();
    t = process.hrtime.bigint();
    table.setPeer(peer, peerRoutes);
    table.owner(placed[0]!);
    heard.push(ms(t));
  }

  t = process.hrtime.bigint();
  const body = JSON.stringify({ member: self, routes: table.published() });
  const encodeMs = ms(t);
  t = process.hrtime.bigint();
  await readPlacements(Readable.from([Buffer.from(body)]) as unknown as IncomingMessage);
  const readMs = ms(t);

  return {
    members,
    usersPerNode: perNode,
    changeMs: { p50: quantile(change, 0.5), p99: quantile(change, 0.99) },
    placeUs: { p50: quantile(place, 0.5), p99: quantile(place, 0.99) },
    lookupUs,
    heardMs: quantile(heard, 0.5),
    publishBytes: Buffer.byteLength(body),
    encodeMs,
    readMs,
  };
}

const rows: Row[] = [];
for (const m of MEMBER_COUNTS) for (const u of USER_COUNTS) rows.push(await measure(m, u));

process.stdout.write(
  `\n${table(
    ['members', 'users per node', 'users in all', 'change p50 ms', 'change p99 ms', 'place p50 µs', 'place p99 µs', 'lookup µs', 'heard p50 ms', 'list KiB', 'sent per interval KiB', 'encode ms', 'read ms'],
    rows.map((r) => [
      String(r.members),
      String(r.usersPerNode),
      String(r.members * r.usersPerNode),
      fmt(r.changeMs.p50),
      fmt(r.changeMs.p99),
      fmt(r.placeUs.p50),
      fmt(r.placeUs.p99),
      fmt(r.lookupUs),
      fmt(r.heardMs),
      fmt(r.publishBytes / 1024),
      fmt(((r.members - 1) * r.publishBytes) / 1024),
      fmt(r.encodeMs),
      fmt(r.readMs),
    ]),
  )}\n`,
);
if (args.json) writeFileSync(args.json, JSON.stringify({ at: new Date().toISOString(), rounds: ROUNDS, rows }, null, 2));
