import assert from 'node:assert/strict';
import { test } from 'node:test';
import { routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { assignBounded, capacity, moves, ownerOf, ranking, type Member } from './owner-map.js';

/** The keys routing uses: the routing parts of users' hashes, as real users have them. */
const keys = (n: number): string[] => Array.from({ length: n }, (_, i) => routeOf(userHash(`user-${i}`)));
const THREE: Member[] = ['10.0.0.2:8443', '10.0.0.3:8443', '10.0.0.4:8443'];
const FOUR: Member[] = [...THREE, '10.0.0.5:8443'];

function counts(assignment: ReadonlyMap<string, Member>): Map<Member, number> {
  const c = new Map<Member, number>();
  for (const m of assignment.values()) c.set(m, (c.get(m) ?? 0) + 1);
  return c;
}
const plain = (members: Member[], ks: string[]): Map<string, Member> => new Map(ks.map((k) => [k, ownerOf(members, k)!]));
/** Keys not on their rendezvous first choice: the only ones bounded load may move beyond the minimum. */
const offFirstChoice = (members: Member[], a: ReadonlyMap<string, Member>): Set<string> => new Set([...a].filter(([k, m]) => ownerOf(members, k) !== m).map(([k]) => k));

test('every node computes the same owner: the member order and repeated members do not matter', () => {
  const ks = keys(500);
  const shuffled = [THREE[2]!, THREE[0]!, THREE[1]!, THREE[0]!];
  for (const k of ks) assert.equal(ownerOf(shuffled, k), ownerOf(THREE, k));
  const a = assignBounded(THREE, ks);
  const b = assignBounded(shuffled, [...ks].reverse());
  assert.deepEqual([...b].sort(), [...a].sort());
  assert.equal(ranking(THREE, ks[0]!)[0], ownerOf(THREE, ks[0]!));
  assert.equal(ownerOf([], ks[0]!), undefined);
});

for (const n of [60, 6000]) {
  test(`${n} users over 3 members: every member within 20% of an even share, none above its bounded capacity`, () => {
    const assignment = assignBounded(THREE, keys(n));
    const cap = capacity(n, 3);
    for (const m of THREE) {
      const c = counts(assignment).get(m) ?? 0;
      assert.ok(Math.abs(c - n / 3) <= 0.2 * (n / 3), `${m} holds ${c} of ${n}`);
      assert.ok(c <= cap, `${m} holds ${c}, capacity ${cap}`);
    }
    assert.equal(assignment.size, n);
  });
}

test('bounded load holds for every member count and margin, also where plain rendezvous is uneven', () => {
  const ks = keys(60);
  // Plain rendezvous on these 60 users is 26/20/14: the reason the bound exists.
  assert.ok(Math.max(...counts(plain(THREE, ks)).values()) > capacity(60, 3));
  for (const m of [1, 2, 3, 4, 7]) {
    const members = Array.from({ length: m }, (_, i) => `node-${i}:8443`);
    for (const eps of [0.01, 0.1, 0.5]) {
      const a = assignBounded(members, ks, eps);
      assert.equal(a.size, 60);
      for (const c of counts(a).values()) assert.ok(c <= capacity(60, m, eps), `${m} members, eps ${eps}: ${c} > ${capacity(60, m, eps)}`);
    }
  }
  assert.throws(() => assignBounded(THREE, ks, 0), /epsilon must be above 0/);
});

test('a member leaving moves exactly its own users (plain rendezvous), each to its second choice', () => {
  const ks = keys(6000);
  const before = plain(THREE, ks);
  const after = plain(THREE.slice(0, 2), ks);
  const leaver = THREE[2]!;
  const moved = moves(before, after);
  assert.deepEqual(new Set(moved), new Set(ks.filter((k) => before.get(k) === leaver)));
  for (const k of moved) assert.equal(after.get(k), ranking(THREE, k)[1]);
});

test('a member joining takes only the users it now outscores: about n/(m+1), within 3 standard deviations', () => {
  const n = 6000;
  const ks = keys(n);
  const before = plain(THREE, ks);
  const after = plain(FOUR, ks);
  const moved = moves(before, after);
  for (const k of moved) assert.equal(after.get(k), FOUR[3], 'a user moved between two old members');
  // Each user's first choice among 4 is the newcomer with probability 1/4: Binomial(n, 1/4).
  const mean = n / 4;
  const sd = Math.sqrt(n * 0.25 * 0.75);
  assert.ok(Math.abs(moved.length - mean) <= 3 * sd, `${moved.length} moved, expected ${mean} ± ${3 * sd}`);
});

for (const n of [60, 6000]) {
  test(`bounded load moves no more than the minimum plus the users it placed off their first choice (${n} users, join and leave)`, () => {
    const ks = keys(n);
    for (const [from, to] of [
      [THREE, FOUR],
      [THREE, THREE.slice(0, 2)],
    ] as const) {
      const before = assignBounded(from, ks);
      const after = assignBounded(to, ks);
      const minimal = new Set(moves(plain(from, ks), plain(to, ks)));
      const displaced = new Set([...offFirstChoice(from, before), ...offFirstChoice(to, after)]);
      const moved = new Set(moves(before, after));
      for (const k of moved) assert.ok(minimal.has(k) || displaced.has(k), `${k} moved without cause`);
      // Every key rendezvous must move, bounded load moves too (or it had been displaced already).
      for (const k of minimal) assert.ok(moved.has(k) || displaced.has(k), `${k} should have moved`);
      assert.ok(moved.size <= minimal.size + displaced.size);
    }
  });
}
