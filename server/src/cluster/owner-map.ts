/**
 * Which api-backend owns a user: a pure function of the live members and the user's key,
 * computed alike by every node (no database, no membership protocol of our own; docs/scaling.md).
 *
 * Rendezvous hashing (highest random weight; Thaler and Ravishankar, "A Name-Based Mapping
 * Scheme for Rendezvous", 1996): every member scores the key with a hash of (member, key) and
 * the highest score owns it. A member leaving moves exactly its own users (each to its second
 * choice); a member joining takes exactly the users it now outscores, about n/(m+1), and
 * nothing else moves. Unlike a ring it needs no virtual nodes to spread evenly.
 *
 * Bounded load: "Consistent Hashing with Bounded Loads" (Mirrokni, Thorup and Zadimoghaddam,
 * SODA 2018, arXiv:1608.01350) applied to rendezvous preference lists, as Vimeo's and HAProxy's
 * implementations do for rings: each member's capacity is ceil((n/m)(1+eps)) of the n keys in
 * the set; keys are placed in a canonical order (ascending by their own hash, so every node
 * places them alike) and each goes to the first member of its own rendezvous ranking that still
 * has room. No member ever holds more than its capacity. `assignBounded(members, keys)` places a
 * whole set at once; routing places users one at a time as their bridges arrive (`placeNew`,
 * over the loads the nodes publish to each other: placements.ts), and a user with no placement
 * anywhere is routed by plain rendezvous (`ownerOf`).
 *
 * The key is a user's client-key routing part (routeOf(userHash), bridge/connection/client-key.ts),
 * not the user hash itself: a request made with a client key names only that routing part, and
 * every node must be able to find the owner from what the request carries.
 */
import { createHash } from 'node:crypto';

/** A member: the address other members reach its peer listener at, `host:port`. */
export type Member = string;

/** The bounded-load margin used unless told otherwise: 10% over an even share. */
export const DEFAULT_EPSILON = 0.1;

/** A member's score for a key: the first 48 bits of SHA-256(member NUL key), exact in a double. */
export function score(member: Member, key: string): number {
  return createHash('sha256').update(member).update('\0').update(key).digest().readUIntBE(0, 6);
}

/** The members in the key's preference order (highest score first; ties by name, so total). */
export function ranking(members: readonly Member[], key: string): Member[] {
  return [...new Set(members)]
    .map((m) => ({ m, s: score(m, key) }))
    .sort((a, b) => b.s - a.s || (a.m < b.m ? -1 : a.m > b.m ? 1 : 0))
    .map((x) => x.m);
}

/** Plain rendezvous: the member that owns `key`, or undefined when there are no members. */
export function ownerOf(members: readonly Member[], key: string): Member | undefined {
  let best: Member | undefined;
  let bestScore = -1;
  for (const m of members) {
    const s = score(m, key);
    if (s > bestScore || (s === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = s;
    }
  }
  return best;
}

/** Most keys any one member may hold when `keys` keys are shared by `members` members. */
export function capacity(keys: number, members: number, epsilon = DEFAULT_EPSILON): number {
  if (members <= 0) return 0;
  return Math.ceil((keys / members) * (1 + epsilon));
}

/**
 * Rendezvous with bounded load over a known set of keys: key → member, identical on every node
 * given the same members and keys (in any order), no member above capacity().
 */
export function assignBounded(members: readonly Member[], keys: Iterable<string>, epsilon = DEFAULT_EPSILON): Map<string, Member> {
  if (!(epsilon > 0)) throw new RangeError(`epsilon must be above 0, got ${epsilon}`);
  const unique = [...new Set(members)];
  const sorted = [...new Set(keys)].sort();
  const out = new Map<string, Member>();
  if (unique.length === 0) return out;
  const cap = capacity(sorted.length, unique.length, epsilon);
  const load = new Map<Member, number>(unique.map((m) => [m, 0]));
  for (const key of sorted) {
    // cap * members >= keys, so some member always has room.
    const owner = ranking(unique, key).find((m) => load.get(m)! < cap)!;
    load.set(owner, load.get(owner)! + 1);
    out.set(key, owner);
  }
  return out;
}

/** The keys whose owner differs between two assignments (keys only in one count as moved). */
export function moves(before: ReadonlyMap<string, Member>, after: ReadonlyMap<string, Member>): string[] {
  const moved: string[] = [];
  for (const [key, owner] of after) if (before.get(key) !== owner) moved.push(key);
  return moved;
}

/**
 * Where a user not yet placed anywhere goes (docs/scaling.md, "routing with the bound"): the
 * first member of its own rendezvous ranking that holds fewer than capacity(placed + 1, members)
 * users, given how many each member holds now. Every node that knows the same loads picks the
 * same member. Placed users never move for it, so this is the incremental form of
 * assignBounded: with every placement under the bound, 3 members and a 10% margin keep 60 users
 * within 20% of even (none above ceil(1.1 * 20) = 22, so none below 60 - 2 * 22 = 16).
 */
export function placeNew(members: readonly Member[], key: string, load: ReadonlyMap<Member, number>, epsilon = DEFAULT_EPSILON): Member | undefined {
  if (!(epsilon > 0)) throw new RangeError(`epsilon must be above 0, got ${epsilon}`);
  const unique = [...new Set(members)];
  if (unique.length === 0) return undefined;
  let placed = 0;
  for (const m of unique) placed += load.get(m) ?? 0;
  const cap = capacity(placed + 1, unique.length, epsilon);
  const order = ranking(unique, key);
  // Loads above the bound (a member that came back to find the others full) leave someone under it.
  return order.find((m) => (load.get(m) ?? 0) < cap) ?? order[0];
}
