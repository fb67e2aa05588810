/**
 * Client keys (issue 9): what a key looks like, and how the three parties that touch one agree on
 * it. The computer makes keys and keeps only their verifiers; the bridge sends the verifiers to the
 * user's streaming proxy over the tunnel; the api-backend routes a presented key by its routing
 * part; the proxy checks its secret against the verifier, in memory. Layout (docs/clients.md):
 *
 *   ctll_ + base64url( route 16 B | key id 6 B | secret 32 B | CRC-32 4 B )   = 83 characters
 *
 * - route: names the user's endpoint without being secret: the first 16 bytes of
 *   SHA-256("ctll-route-v1:" + user hash), so the api-backend computes it for a signed-in bridge,
 *   and a key does not carry the user hash that the cloud's names and audit lines use;
 * - key id: random, so the proxy compares against exactly one verifier;
 * - secret: 256 random bits;
 * - CRC-32 of the prefix and the bytes before it (as GitHub's tokens carry one): a cut or mistyped
 *   key is told apart from a wrong one without touching any proxy.
 *
 * The verifier is SHA-256 over the route, the id and the secret. No password stretching: the
 * secret is 256 random bits, not a password, so no dictionary or brute force applies to its hash.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const KEY_PREFIX = 'ctll_';
const ROUTE_BYTES = 16;
const ID_BYTES = 6;
const SECRET_BYTES = 32;
const CHECK_BYTES = 4;
const BODY_BYTES = ROUTE_BYTES + ID_BYTES + SECRET_BYTES + CHECK_BYTES;
/** Characters of a whole key. */
export const KEY_LENGTH = KEY_PREFIX.length + Math.ceil((BODY_BYTES * 4) / 3);

/**
 * The proxy asks its bridge for the key set on a stream with this `:authority`. Relayed client
 * requests always carry TUNNEL_AUTHORITY (the proxy sets it), so no client can reach this path.
 */
export const CONTROL_AUTHORITY = 'control.tunnel';
/** The path of that stream: NDJSON, one KeySetLine now and one whenever the set changes. */
export const KEY_SET_PATH = '/keys';
/** api-backend → proxy: the key the client presented (the api-backend's hop carries the proxy's secret). */
export const CLIENT_KEY_HEADER = 'x-cloudtolocalllm-client-key';
/** proxy → bridge: the id of the key a relayed request was made with; its scopes then apply. */
export const KEY_ID_HEADER = 'x-cloudtolocalllm-key-id';

export interface ParsedKey {
  /** base64url of the routing part. */
  route: string;
  /** base64url of the key id. */
  id: string;
  secret: Buffer;
}

export type KeyParse = ({ ok: true } & ParsedKey) | { ok: false; reason: 'key-malformed' | 'key-truncated' | 'key-checksum'; message: string };

/** Does this bearer credential claim to be a client key (rather than a sign-in token)? */
export function isClientKey(credential: string): boolean {
  return credential.startsWith(KEY_PREFIX);
}

/** The routing part of a user's keys, from the user hash (SHA-256 hex of the user id). */
export function routeOf(userHash: string): string {
  return createHash('sha256').update(`ctll-route-v1:${userHash}`).digest().subarray(0, ROUTE_BYTES).toString('base64url');
}

function checksum(bytes: Buffer): Buffer {
  const out = Buffer.alloc(CHECK_BYTES);
  out.writeUInt32BE(crc32(Buffer.concat([Buffer.from(KEY_PREFIX), bytes])) >>> 0);
  return out;
}

/** A new key for the user whose routing part is `route`: the key (shown once) and what is kept of it. */
export function createClientKey(route: string): { key: string; id: string; verifier: string } {
  const routeBytes = Buffer.from(route, 'base64url');
  if (routeBytes.length !== ROUTE_BYTES) throw new Error(`a routing part has ${ROUTE_BYTES} bytes, not ${routeBytes.length}`);
  const id = randomBytes(ID_BYTES);
  const secret = randomBytes(SECRET_BYTES);
  const head = Buffer.concat([routeBytes, id, secret]);
  const key = KEY_PREFIX + Buffer.concat([head, checksum(head)]).toString('base64url');
  return { key, id: id.toString('base64url'), verifier: verifierOf(route, id.toString('base64url'), secret) };
}

/** Checks a key's form and checksum; every refusal says what is wrong, never echoing the key. */
export function parseClientKey(key: string): KeyParse {
  if (!isClientKey(key)) return { ok: false, reason: 'key-malformed', message: `a CloudToLocalLLM key begins with "${KEY_PREFIX}"` };
  const body = key.slice(KEY_PREFIX.length);
  if (!/^[A-Za-z0-9_-]*$/.test(body)) {
    return { ok: false, reason: 'key-malformed', message: 'the key holds characters that no CloudToLocalLLM key has (letters, digits, "-" and "_" only); copy it again' };
  }
  if (key.length !== KEY_LENGTH) {
    return {
      ok: false,
      reason: 'key-truncated',
      message: `the key is ${key.length} characters long, a CloudToLocalLLM key has ${KEY_LENGTH}: it was cut off or has extra characters; copy it again`,
    };
  }
  const bytes = Buffer.from(body, 'base64url');
  const head = bytes.subarray(0, BODY_BYTES - CHECK_BYTES);
  if (bytes.length !== BODY_BYTES || !timingSafeEqual(checksum(head), bytes.subarray(BODY_BYTES - CHECK_BYTES))) {
    return { ok: false, reason: 'key-checksum', message: "the key's checksum does not match: a character was mistyped or changed; copy the key again" };
  }
  return {
    ok: true,
    route: head.subarray(0, ROUTE_BYTES).toString('base64url'),
    id: head.subarray(ROUTE_BYTES, ROUTE_BYTES + ID_BYTES).toString('base64url'),
    secret: head.subarray(ROUTE_BYTES + ID_BYTES),
  };
}

/** SHA-256 (hex) over route, id and secret: what the computer keeps and the proxy compares with. */
export function verifierOf(route: string, id: string, secret: Buffer): string {
  return createHash('sha256').update('ctll-key-v1\0').update(Buffer.from(route, 'base64url')).update(Buffer.from(id, 'base64url')).update(secret).digest('hex');
}

/** Does the key match a verifier? Constant time in the secret. */
export function matchesVerifier(key: ParsedKey, verifier: string): boolean {
  const expected = Buffer.from(verifier, 'hex');
  const actual = Buffer.from(verifierOf(key.route, key.id, key.secret), 'hex');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** One line of the key-set stream: every key the proxy may accept (no names, no scopes: the bridge applies those). */
export interface KeySetLine {
  keys: Array<{ id: string; verifier: string; expiresAt?: number }>;
}

/** Reads a line of the key-set stream, or says why it is not one. */
export function parseKeySetLine(line: string): { ok: true; value: KeySetLine } | { ok: false; message: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, message: 'a key-set line is not JSON' };
  }
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return { ok: false, message: 'a key-set line has no "keys" list' };
  const out: KeySetLine['keys'] = [];
  for (const k of keys as unknown[]) {
    const { id, verifier, expiresAt } = (k ?? {}) as Record<string, unknown>;
    if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{8}$/.test(id) || typeof verifier !== 'string' || !/^[0-9a-f]{64}$/.test(verifier)) {
      return { ok: false, message: 'a key-set entry needs an 8-character "id" and a 64-hex-digit "verifier"' };
    }
    if (expiresAt !== undefined && (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt))) return { ok: false, message: 'a key-set entry\'s "expiresAt" must be a number (ms)' };
    out.push({ id, verifier, ...(typeof expiresAt === 'number' ? { expiresAt } : {}) });
  }
  return { ok: true, value: { keys: out } };
}
