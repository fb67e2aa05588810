/**
 * Where the embedded issuer keeps its sessions, interactions, codes, grants and refresh tokens:
 * memory, on purpose (it serves local use and tests; a restart signs everyone out, and nothing of
 * a user is ever written to disk). Our own rather than oidc-provider's quick-start adapter, which
 * keeps every provider of the process in one shared 1,000-entry LRU (a benchmark signing in
 * 1,000 users would evict the first users' refresh tokens) and warns at every start that it is
 * "development-only": here each provider has a store of its own, entries live exactly as long as
 * oidc-provider says, and the bound is large and explicit.
 */
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';

export interface MemoryStoreOptions {
  /** Most entries kept; past it expired ones go first, then the oldest (default 100,000). */
  maxEntries?: number;
  /** Milliseconds since the epoch (tests move it). */
  now?: () => number;
}

interface Entry {
  value: unknown;
  /** Epoch ms; Infinity when oidc-provider gave no lifetime. */
  expiresAt: number;
}

/** Models whose records belong to a grant, so revoking the grant removes them. */
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

/** An adapter factory for one provider: `new Provider(issuer, { adapter: memoryAdapterFactory() })`. */
export function memoryAdapterFactory(options: MemoryStoreOptions = {}): AdapterFactory {
  const maxEntries = options.maxEntries ?? 100_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  let setsSinceSweep = 0;

  const get = <T>(key: string): T | undefined => {
    const entry = entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now()) {
      entries.delete(key);
      return undefined;
    }
    return entry.value as T;
  };
  const sweep = (): void => {
    const t = now();
    for (const [key, entry] of entries) if (entry.expiresAt <= t) entries.delete(key);
    // Still full: the oldest go (a Map iterates in insertion order).
    for (const key of entries.keys()) {
      if (entries.size <= maxEntries) break;
      entries.delete(key);
    }
  };
  const expiry = (expiresInSec: number | undefined): number => (expiresInSec ? now() + expiresInSec * 1000 : Infinity);
  const set = (key: string, value: unknown, expiresAt: number): void => {
    entries.delete(key); // re-inserted at the end: "oldest" means least recently written
    entries.set(key, { value, expiresAt });
    if (entries.size > maxEntries || ++setsSinceSweep >= 1000) {
      setsSinceSweep = 0;
      sweep();
    }
  };

  return (model: string): Adapter => {
    const keyOf = (id: string): string => `${model}:${id}`;
    const find = async (id: string): Promise<AdapterPayload | undefined> => get<AdapterPayload>(keyOf(id));
    return {
      async upsert(id, payload, expiresIn) {
        const key = keyOf(id);
        const expiresAt = expiry(expiresIn);
        if (model === 'Session' && payload.uid) set(`sessionUid:${payload.uid}`, id, expiresAt);
        if (GRANTABLE.has(model) && payload.grantId) {
          // The grant's list lives as long as its longest-lived member (a refresh token outlives
          // the access tokens added after it), or revoking the grant would miss it.
          const grantKey = `grant:${payload.grantId}`;
          const members = get<string[]>(grantKey) ?? [];
          if (!members.includes(key)) members.push(key);
          set(grantKey, members, Math.max(expiresAt, entries.get(grantKey)?.expiresAt ?? 0));
        }
        if (payload.userCode) set(`userCode:${payload.userCode}`, id, expiresAt);
        set(key, payload, expiresAt);
      },
      find,
      async findByUid(uid) {
        const id = get<string>(`sessionUid:${uid}`);
        return id === undefined ? undefined : find(id);
      },
      async findByUserCode(userCode) {
        const id = get<string>(`userCode:${userCode}`);
        return id === undefined ? undefined : find(id);
      },
      async consume(id) {
        const payload = get<AdapterPayload>(keyOf(id));
        if (payload) payload.consumed = Math.floor(now() / 1000);
      },
      async destroy(id) {
        entries.delete(keyOf(id));
      },
      async revokeByGrantId(grantId) {
        const grantKey = `grant:${grantId}`;
        for (const key of get<string[]>(grantKey) ?? []) entries.delete(key);
        entries.delete(grantKey);
      },
    };
  };
}
