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
/**
 * proxy → bridge: the scope of the key (encodeKeyScope), which its own computer sent beside its
 * verifier, so another of the user's computers can serve it under that scope and its own policy.
 * Like every x-cloudtolocalllm- header it is dropped from what a client sends (headers.ts).
 */
export const KEY_SCOPE_HEADER = 'x-cloudtolocalllm-key-scope';
/** bridge → proxy, a trailer of a keyed answer: the tokens counted, "IN OUT". */
export const KEY_TOKENS_TRAILER = 'x-cloudtolocalllm-key-tokens';
/**
 * proxy → bridge, on CONTROL_AUTHORITY: POST one KeyUsageReport (JSON) to the key's own computer,
 * for a request another computer served: usage is counted where the key was made.
 */
export const KEY_USAGE_PATH = '/keys/usage';

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

/**
 * What a key may do, as its computer sends it beside the verifier (issue 10): enough for another
 * of the user's computers to apply it. Names and model names are the user's labels, not secrets.
 * `allow` holds model management endpoints (ingress/ollama-routes.ts); the bridge that applies it
 * keeps only the ones it knows.
 */
export interface KeyScope {
  name: string;
  /** Models the key may use; absent: all. */
  models?: string[];
  allow: string[];
  /** The computers the key may use; absent: all of the user's. */
  machines?: string[];
  expiresAt?: number;
}

/** One line of the key-set stream: every key the proxy may accept. */
export interface KeySetLine {
  keys: Array<{ id: string; verifier: string; expiresAt?: number; scope?: KeyScope }>;
  /**
   * This bridge serves keys made on the user's other computers under the scope the proxy passes
   * (KEY_SCOPE_HEADER). An older bridge sends neither this nor scopes: its keys stay its own.
   */
  servesScopes?: boolean;
}

/** Limits of a scope on the wire: a model list as long as anyone types, a header that stays small. */
const MAX_SCOPE_MODELS = 256;
const MAX_SCOPE_MACHINES = 64;
const MAX_SCOPE_ITEM = 255;

function stringList(v: unknown, max: number): string[] | undefined {
  if (!Array.isArray(v) || v.length > max || !v.every((s) => typeof s === 'string' && s.length > 0 && s.length <= MAX_SCOPE_ITEM)) return undefined;
  return v as string[];
}

/** Reads a scope (from a key-set line or the header), or says what is wrong with it. */
export function parseKeyScope(value: unknown): { ok: true; value: KeyScope } | { ok: false; message: string } {
  const { name, models, allow, machines, expiresAt } = (value ?? {}) as Record<string, unknown>;
  if (typeof name !== 'string' || name.length === 0 || name.length > 64) return { ok: false, message: 'a key scope needs a "name" of 1 to 64 characters' };
  const allowList = stringList(allow, 16);
  if (!allowList) return { ok: false, message: 'a key scope\'s "allow" must be a list of management endpoints' };
  const modelList = models === undefined ? undefined : stringList(models, MAX_SCOPE_MODELS);
  if (models !== undefined && !modelList) return { ok: false, message: `a key scope's "models" must be a list of at most ${MAX_SCOPE_MODELS} model names` };
  const machineList = machines === undefined ? undefined : stringList(machines, MAX_SCOPE_MACHINES);
  if (machines !== undefined && !machineList) return { ok: false, message: `a key scope's "machines" must be a list of at most ${MAX_SCOPE_MACHINES} computer names` };
  if (expiresAt !== undefined && (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt))) return { ok: false, message: 'a key scope\'s "expiresAt" must be a number (ms)' };
  return {
    ok: true,
    value: { name, allow: allowList, ...(modelList ? { models: modelList } : {}), ...(machineList ? { machines: machineList } : {}), ...(typeof expiresAt === 'number' ? { expiresAt } : {}) },
  };
}

/** The scope as KEY_SCOPE_HEADER carries it: base64url of its JSON (a header holds no raw quotes safely everywhere). */
export function encodeKeyScope(scope: KeyScope): string {
  return Buffer.from(JSON.stringify(scope), 'utf8').toString('base64url');
}

export function decodeKeyScope(header: string): { ok: true; value: KeyScope } | { ok: false; message: string } {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, message: 'the key scope header is not base64url JSON' };
  }
  return parseKeyScope(json);
}

/** What the proxy tells a key's own computer of a request another computer served. */
export interface KeyUsageReport {
  id: string;
  tokensIn: number;
  tokensOut: number;
}

export function parseKeyUsageReport(text: string): { ok: true; value: KeyUsageReport } | { ok: false; message: string } {
  let v: Record<string, unknown>;
  try {
    v = (JSON.parse(text) ?? {}) as Record<string, unknown>;
  } catch {
    return { ok: false, message: 'a key usage report is not JSON' };
  }
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (typeof v['id'] !== 'string' || !/^[A-Za-z0-9_-]{8}$/.test(v['id']) || !count(v['tokensIn']) || !count(v['tokensOut'])) {
    return { ok: false, message: 'a key usage report needs an 8-character "id" and whole "tokensIn" and "tokensOut"' };
  }
  return { ok: true, value: { id: v['id'], tokensIn: v['tokensIn'], tokensOut: v['tokensOut'] } };
}

/** The KEY_TOKENS_TRAILER value, or undefined when it is not one. */
export function parseKeyTokens(value: unknown): { tokensIn: number; tokensOut: number } | undefined {
  const m = typeof value === 'string' ? /^(\d{1,15}) (\d{1,15})$/.exec(value) : null;
  return m ? { tokensIn: Number(m[1]), tokensOut: Number(m[2]) } : undefined;
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
    const { id, verifier, expiresAt, scope } = (k ?? {}) as Record<string, unknown>;
    if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{8}$/.test(id) || typeof verifier !== 'string' || !/^[0-9a-f]{64}$/.test(verifier)) {
      return { ok: false, message: 'a key-set entry needs an 8-character "id" and a 64-hex-digit "verifier"' };
    }
    if (expiresAt !== undefined && (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt))) return { ok: false, message: 'a key-set entry\'s "expiresAt" must be a number (ms)' };
    const parsedScope = scope === undefined ? undefined : parseKeyScope(scope);
    if (parsedScope && !parsedScope.ok) return parsedScope;
    out.push({ id, verifier, ...(typeof expiresAt === 'number' ? { expiresAt } : {}), ...(parsedScope?.ok ? { scope: parsedScope.value } : {}) });
  }
  const servesScopes = (value as { servesScopes?: unknown }).servesScopes === true;
  return { ok: true, value: { keys: out, ...(servesScopes ? { servesScopes } : {}) } };
}
