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
 * has room. No member ever holds more than its capacity. This needs the set of live keys, so it
 * is `assignBounded(members, keys)`; a single key with no agreed set is placed by plain
 * rendezvous (`ownerOf`), which is what routing uses until the nodes share the live set
 * (docs/scaling.md, "what is not built yet").
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
