/**
 * Settings' "Use from other apps" on the main side, without Electron: the same KeyStore as
 * `npm run keys` on the same directory, so a key made here is listed by the CLI and picked up by
 * the running bridge (its KeyRing watches keys.json), and the same input rules (key-input.ts).
 * The secret of a new key is returned once and kept nowhere: not here, not in a log.
 */
import { keyNameProblem, parseExpiry, parseMachineList, parseModelList } from '@cloudtolocalllm/bridge/keys/key-input';
import { KeyStoreError, type KeyDefinition, type KeyStore, type KeyUsage } from '@cloudtolocalllm/bridge/keys/key-store';
import { MANAGEMENT_ENDPOINTS, type ManagementEndpoint } from '@cloudtolocalllm/bridge/ingress/ollama-routes';
import type { ClientKeyView, ClientKeysView, CreateKeyErrors, CreateKeyRequest, CreateKeyResult, RevokeKeyResult } from './ipc-contract.js';

export function keyView(k: KeyDefinition, u: KeyUsage | undefined, now: number): ClientKeyView {
  return {
    id: k.id,
    name: k.name,
    models: k.models ?? null,
    allow: [...k.allow],
    machines: k.machines ?? null,
    createdAt: k.createdAt,
    expiresAt: k.expiresAt ?? null,
    expired: k.expiresAt !== undefined && k.expiresAt <= now,
    lastUsedAt: u?.lastUsedAt ?? null,
    requests: u?.requests ?? 0,
    tokensIn: u?.tokensIn ?? 0,
    tokensOut: u?.tokensOut ?? 0,
  };
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** A comma-separated list field: none when blank, else parsed; the parser's refusal goes to `refuse`. */
function listField(value: unknown, parse: (list: string) => string[], refuse: (message: string) => void): string[] | undefined {
  if (!text(value).trim()) return undefined;
  try {
    return parse(text(value));
  } catch (e) {
    refuse((e as Error).message);
    return undefined;
  }
}

export class ClientKeys {
  constructor(
    private readonly store: KeyStore,
    /** The endpoint when account.json has none yet (the configured cloud), e.g. `https://cloud/ollama`. */
    private readonly fallbackEndpoint: () => string | undefined = () => undefined,
  ) {}

  private endpoint(): string | null {
    try {
      return this.store.account()?.endpoint ?? this.fallbackEndpoint() ?? null;
    } catch {
      return this.fallbackEndpoint() ?? null;
    }
  }

  list(now = Date.now()): ClientKeysView {
    try {
      const signedIn = this.store.account() !== undefined;
      const usage = this.store.usage();
      return { endpoint: this.endpoint(), signedIn, keys: this.store.keys().map((k) => keyView(k, usage[k.id], now)) };
    } catch (e) {
      return { endpoint: this.endpoint(), signedIn: false, keys: [], problem: (e as Error).message };
    }
  }

  /** Every field checked, each error kept by the field it is about, so the window shows them all in place. */
  create(raw: CreateKeyRequest, now = Date.now()): CreateKeyResult {
    const errors: CreateKeyErrors = {};
    const name = text(raw?.name).trim();
    const nameProblem = keyNameProblem(name);
    if (nameProblem) errors.name = nameProblem;
    const models = listField(raw?.models, parseModelList, (m) => (errors.models = m));
    const machines = listField(raw?.machines, parseMachineList, (m) => (errors.machines = m));
    const allow = Array.isArray(raw?.allow) ? raw.allow : [];
    const unknown = allow.filter((a) => !(MANAGEMENT_ENDPOINTS as readonly unknown[]).includes(a));
    if (unknown.length) errors.allow = `not model management this app knows: ${unknown.map(String).join(', ')}`;
    let expiresAt: number | undefined;
    if (text(raw?.expires).trim()) {
      try {
        expiresAt = parseExpiry(text(raw.expires), now);
      } catch (e) {
        errors.expires = (e as Error).message;
      }
    }
    if (!errors.name) {
      try {
        if (this.store.keys().some((k) => k.name === name)) errors.name = `a key named "${name}" exists already; choose another name or revoke that one first`;
      } catch (e) {
        errors.form = (e as Error).message;
      }
    }
    if (Object.keys(errors).length) return { ok: false, errors };
    try {
      const made = this.store.create(
        {
          name,
          ...(models ? { models } : {}),
          allow: [...new Set(allow as ManagementEndpoint[])],
          ...(machines ? { machines } : {}),
          ...(expiresAt !== undefined ? { expiresAt } : {}),
        },
        now,
      );
      return { ok: true, key: keyView(made.definition, undefined, now), secret: made.key, endpoint: this.endpoint() };
    } catch (e) {
      if (!(e instanceof KeyStoreError)) throw e;
      // The store's own checks (someone else took the name a moment ago, nobody signed in).
      return { ok: false, errors: /exists already/.test(e.message) ? { name: e.message } : { form: e.message } };
    }
  }

  revoke(id: unknown): RevokeKeyResult {
    if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{8}$/.test(id)) return { ok: false, error: 'that is not a key id' };
    try {
      const gone = this.store.revoke(id);
      return gone ? { ok: true, name: gone.name } : { ok: false, error: 'this key is gone already (revoked elsewhere, perhaps with npm run keys)' };
    } catch (e) {
      if (!(e instanceof KeyStoreError)) throw e;
      return { ok: false, error: e.message };
    }
  }
}
