/**
 * How the api-backends tell each other which users they hold (placements.ts): each node PUTs
 * its whole list to every peer's listener over the same mutual TLS as the hop, every interval
 * and soon after its own list changes. Whole lists, not changes: a lost or reordered message is
 * repaired by the next one, and a node that restarts starts from what runs on it. The list
 * holds users' routing parts only (16 bytes of a hash each, as a client key carries them): no
 * token, key or name; it is kept in memory and never written anywhere.
 */
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { checkMember } from './membership.js';
import type { Member } from './owner-map.js';

/** The peer listener's route for a node's list; not served on the public listener. */
export const PLACEMENTS_PATH = '/cluster/placements';

/** A routing part: routeOf's 16 bytes in base64url. */
const ROUTE = /^[A-Za-z0-9_-]{22}$/;

/** Largest list accepted: about 290,000 users, far over what a node holds (bench:proxies). */
export const MAX_PLACEMENTS_BYTES = 8 * 1024 * 1024;

export interface Placements {
  /** The publishing node's member address. */
  member: Member;
  routes: string[];
}

/** A refused list, with what was wrong with it. */
export class PlacementsRefused extends Error {
  constructor(
    readonly status: 400 | 413,
    message: string,
  ) {
    super(message);
  }
}

/** Reads and checks a peer's list. */
export async function readPlacements(req: IncomingMessage): Promise<Placements> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_PLACEMENTS_BYTES) {
      req.resume();
      throw new PlacementsRefused(413, `the placements list is over ${MAX_PLACEMENTS_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new PlacementsRefused(400, 'the placements list is not JSON');
  }
  return checkPlacements(body);
}

/** The list's shape: `{member: "host:port", routes: [routing part, ...]}`. */
export function checkPlacements(body: unknown): Placements {
  if (typeof body !== 'object' || body === null) throw new PlacementsRefused(400, 'the placements list must be an object {member, routes}');
  const { member, routes } = body as { member?: unknown; routes?: unknown };
  if (typeof member !== 'string') throw new PlacementsRefused(400, 'the placements list has no member (host:port)');
  const problem = checkMember(member);
  if (problem) throw new PlacementsRefused(400, `the placements list's member "${member.slice(0, 80)}" ${problem}`);
  if (!Array.isArray(routes)) throw new PlacementsRefused(400, 'the placements list has no routes array');
  const bad = routes.findIndex((r) => typeof r !== 'string' || !ROUTE.test(r));
  if (bad !== -1) throw new PlacementsRefused(400, `the placements list's route ${bad} is not a routing part (22 base64url characters)`);
  return { member, routes: routes as string[] };
}

/** PUTs this node's list to one peer; resolves true when the peer took it. */
export function sendPlacements(peer: Member, agent: https.Agent, placements: Placements, timeoutMs = 5_000): Promise<boolean> {
  const at = peer.lastIndexOf(':');
  const body = JSON.stringify(placements);
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: peer.slice(0, at).replace(/^\[|\]$/g, ''),
        port: Number(peer.slice(at + 1)),
        method: 'PUT',
        path: PLACEMENTS_PATH,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 204));
        res.on('error', () => resolve(false));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => resolve(false));
    req.end(body);
  });
}
