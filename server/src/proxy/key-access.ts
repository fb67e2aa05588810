/**
 * Which of the user's connected computers a client key may reach, and what the proxy tells them
 * (issue 10, docs/tunnel.md "One key, every computer"). A key lives on the computer that made
 * it; its bridge sends the verifier and the key's scope. With the scope, any of the user's
 * computers whose bridge serves scopes may serve the key (within the key's computer list), and
 * the proxy passes the scope along for that bridge to apply with its own policy. Without one (an
 * older bridge), the key stays on the computers that hold it, as before.
 */
import type { ServerResponse } from 'node:http';
import {
  CONTROL_AUTHORITY,
  encodeKeyScope,
  KEY_ID_HEADER,
  KEY_SCOPE_HEADER,
  KEY_USAGE_PATH,
  parseKeyTokens,
  type KeyScope,
} from '@cloudtolocalllm/bridge/connection/client-key';
import type { Computer } from './bridge-links.js';
import type { KeyCheck } from './key-set.js';
import { NO_BRIDGE_MESSAGE } from './relay.js';
import { sendOllamaError } from './ollama-errors.js';

export type KeyAccess =
  | {
      ok: true;
      id: string;
      scope?: KeyScope;
      /** The computers whose own key set holds the key (its own computer). */
      holders: Computer[];
      /** The connected computers the key may reach. */
      pool: Computer[];
    }
  | Exclude<KeyCheck, { ok: true }>;

/**
 * Checks a key on every connected computer's set: first without waiting (the usual case: a
 * known key), then, if none holds it yet, with each set's short wait for a key made a moment ago.
 */
export async function checkKeyAccess(presented: string, computers: readonly Computer[]): Promise<KeyAccess> {
  const quick = await Promise.all(computers.map((c) => c.keySet.check(presented, undefined, 0)));
  // A key revoked on its computer is refused at once; only an id no set has seen waits.
  const settled = quick.some((c) => c.ok) || computers.some((c) => c.keySet.revoked(presented));
  const checks = settled ? quick : await Promise.all(computers.map((c) => c.keySet.check(presented)));
  const holders = computers.filter((_, i) => checks[i]!.ok);
  const first = checks.find((c) => c.ok);
  if (!first?.ok) {
    // The most telling refusal: an expired key over an unknown one.
    return (checks.find((c) => !c.ok && c.reason === 'key-expired') ?? checks[0]!) as Exclude<KeyCheck, { ok: true }>;
  }
  const scope = first.scope;
  if (!scope) return { ok: true, id: first.id, holders, pool: holders };
  const machines = scope.machines;
  // Every set was read by the checks above, so each computer has said whether it serves scopes.
  const pool = computers.filter((c) => (holders.includes(c) || c.keySet.servesScopes) && (!machines || machines.includes(c.name)));
  return { ok: true, id: first.id, scope, holders, pool };
}

/**
 * Headers for the serving bridge: the key's id, and its scope only for a computer that did not
 * make it. The key's own computer gets no scope: it must judge by its own key list, so a key
 * revoked there a moment ago (before its new set reached the proxy) is refused, not served.
 */
export function keyHeaders(access: Extract<KeyAccess, { ok: true }>, computer: Computer): Record<string, string> {
  const elsewhere = access.scope && !access.holders.includes(computer);
  return { [KEY_ID_HEADER]: access.id, ...(elsewhere ? { [KEY_SCOPE_HEADER]: encodeKeyScope(access.scope!) } : {}) };
}

/**
 * Refuses what the key's computer list rules out: a pin to a computer outside it (403, naming
 * the allowed ones), or none of its computers connected (503). True when it answered.
 */
export function refuseOutsideMachines(res: ServerResponse, access: Extract<KeyAccess, { ok: true }>, pinned: string | undefined, connected: readonly Computer[]): boolean {
  const machines = access.scope?.machines;
  if (!machines) return false;
  const name = access.scope!.name;
  if (pinned !== undefined && !machines.includes(pinned)) {
    sendOllamaError(res, 'key-machine', `the key "${name}" may not use the computer "${pinned.slice(0, 64)}"; it may use ${machines.join(', ')}`);
    return true;
  }
  if (access.pool.length === 0) {
    const others = connected.length ? ` (connected: ${connected.map((c) => c.name).join(', ')})` : '';
    sendOllamaError(res, 'no-bridge', `none of the computers the key "${name}" may use (${machines.join(', ')}) is connected${others}. ${NO_BRIDGE_MESSAGE}`, { 'retry-after': '5' });
    return true;
  }
  return false;
}

/**
 * A request another computer served with this key: its tokens (the serving bridge's trailer)
 * are taken to the key's own computer, which counts usage. Only answers the bridge relayed
 * carry the trailer; refusals are not counted, as on the key's own computer. `served`
 * undefined: a listing the proxy answered from several computers, one request without tokens.
 */
export function reportUsage(access: Extract<KeyAccess, { ok: true }>, served: Computer | undefined, trailer: unknown): void {
  if (served && access.holders.includes(served)) return;
  const tokens = served ? parseKeyTokens(trailer) : { tokensIn: 0, tokensOut: 0 };
  if (tokens) postUsage(access, tokens);
}

/** Whether the proxy counts what `computer` relays for this key: it is not the key's own computer. */
export function countsRelayed(access: Extract<KeyAccess, { ok: true }>, computer: Computer): boolean {
  return !access.holders.includes(computer);
}

/**
 * An answer another computer began with this key and did not complete (it left, its Ollama
 * failed, the client went away): no trailer comes, so the tokens the proxy itself relayed to the
 * client are counted where the key lives. The proxy's own count, never the client's word.
 */
export function reportCutUsage(access: Extract<KeyAccess, { ok: true }>, relayed: { tokensIn: number; tokensOut: number }): void {
  postUsage(access, relayed);
}

function postUsage(access: Extract<KeyAccess, { ok: true }>, tokens: { tokensIn: number; tokensOut: number }): void {
  // The key's own computer; when it is not connected, the use is not recorded anywhere.
  const holder = access.holders.find((c) => c.link.connected);
  if (!holder) return;
  const stream = holder.link.request({ ':method': 'POST', ':path': KEY_USAGE_PATH, ':authority': CONTROL_AUTHORITY, 'content-type': 'application/json' }, { endStream: false });
  if (!stream) return;
  stream.on('error', () => undefined);
  stream.resume();
  stream.end(JSON.stringify({ id: access.id, ...tokens }));
}
