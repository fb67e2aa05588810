/**
 * How the isolation firewall's keeper (firewall-keeper.ts, the privileged `isolation-firewall`
 * service) tells the unprivileged api-backend that the rules are in place: a small JSON file in a
 * volume the api-backend mounts read-only. The file says until when it may be believed; a keeper
 * that died or hangs stops renewing it, and the api-backend then refuses to start proxies
 * (CTLL_FIREWALL=enforce) exactly as if it had failed to install the rules itself.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FirewallCounters } from './firewall-counters.js';
import { BRIDGE_INTERFACES, ISOLATION_CHAIN, type FirewallResult } from './isolation-firewall.js';

export interface FirewallStatus {
  ok: boolean;
  /** Why the rules are not in place (when ok is false). */
  error?: string;
  chain: string;
  interfaces: string;
  /** When the keeper last checked the rules (ms since the epoch). */
  checkedAt: number;
  /** Past this the status is stale: the keeper should have checked again well before. */
  validUntil: number;
  /** What the rules refused so far (firewall-counters.ts), when they could be read. */
  counters?: FirewallCounters;
}

/** Writes the status so a reader never sees half a file (write aside, then rename). */
export function writeFirewallStatus(file: string, result: FirewallResult, validForMs: number, now = Date.now(), counters?: FirewallCounters): FirewallStatus {
  const status: FirewallStatus = {
    ok: result.ok,
    ...(result.ok ? {} : { error: result.error }),
    chain: ISOLATION_CHAIN,
    interfaces: BRIDGE_INTERFACES,
    checkedAt: now,
    validUntil: now + validForMs,
    ...(counters ? { counters } : {}),
  };
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the status file of the configuration (CTLL_FIREWALL_STATUS_FILE), never a request's
  mkdirSync(dirname(file), { recursive: true });
  const aside = `${file}.${process.pid}.tmp`;
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- beside the status file of the configuration (CTLL_FIREWALL_STATUS_FILE), never a request's
  writeFileSync(aside, `${JSON.stringify(status)}\n`, { mode: 0o644 });
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the status file of the configuration (CTLL_FIREWALL_STATUS_FILE), never a request's
  renameSync(aside, file);
  return status;
}

/**
 * What the status file says about the rules, as a FirewallResult: ok only when the file exists,
 * parses, says ok, and is not stale. Never throws; every other case says what is wrong.
 */
export function readFirewallStatus(file: string, now = Date.now()): FirewallResult {
  let text: string;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the status file of the configuration (CTLL_FIREWALL_STATUS_FILE), never a request's
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, error: code === 'ENOENT' ? `the isolation firewall's keeper has not written ${file} yet` : `${file} cannot be read (${code ?? (e as Error).message})` };
  }
  let status: Partial<FirewallStatus>;
  try {
    status = JSON.parse(text) as Partial<FirewallStatus>;
  } catch {
    return { ok: false, error: `${file} is not the keeper's JSON status` };
  }
  if (typeof status.ok !== 'boolean' || typeof status.checkedAt !== 'number' || typeof status.validUntil !== 'number') {
    return { ok: false, error: `${file} is not the keeper's JSON status (ok, checkedAt, validUntil)` };
  }
  if (!status.ok) return { ok: false, error: `the isolation firewall's keeper could not install the rules: ${status.error ?? 'no reason given'}` };
  if (now > status.validUntil) {
    return { ok: false, error: `the isolation firewall's keeper last confirmed the rules ${Math.round((now - status.checkedAt) / 1000)} s ago and has not since (is the isolation-firewall service running?)` };
  }
  return { ok: true };
}

/**
 * The refusal counters the keeper published with its status, or undefined when there are none
 * (no file yet, a keeper that could not read them, or a stale status: old counts are no news).
 */
export function readFirewallCounters(file: string, now = Date.now()): FirewallCounters | undefined {
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the status file of the configuration (CTLL_FIREWALL_STATUS_FILE), never a request's
    const status = JSON.parse(readFileSync(file, 'utf8')) as Partial<FirewallStatus>;
    const c = status.counters;
    if (typeof status.validUntil !== 'number' || now > status.validUntil || !c || typeof c.readAt !== 'number') return undefined;
    const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
    const byBridge: Record<string, number> = {};
    for (const [bridge, packets] of Object.entries(c.byBridge ?? {})) byBridge[bridge] = count(packets);
    return { readAt: c.readAt, refused: { tcp: count(c.refused?.tcp), host: count(c.refused?.host), beyond: count(c.refused?.beyond) }, byBridge };
  } catch {
    return undefined;
  }
}
