/**
 * Client keys the user's proxy accepted a moment ago, for edge routing (edge-route.ts). Only
 * such a key's requests go from nginx straight to the proxy: a key that fails there could not be
 * counted against the per-user failure limit (the api-backend does not see the answer), so every
 * key the proxy has not accepted lately goes through the api-backend, where it is checked and
 * counted as always. A key revoked on the user's computer meanwhile is refused by the proxy, not
 * counted, for at most `ttlMs`: it was that user's own key, not a guess.
 *
 * Held by the SHA-256 of the key, never the key itself, in memory only.
 */
import { createHash } from 'node:crypto';
import type { UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';

export const ACCEPTED_KEY_TTL_MS = 60_000;
const MAX_KEYS = 10_000;

const digest = (key: string): string => createHash('sha256').update(key, 'utf8').digest('base64url');

export class AcceptedKeys {
  /** In the order they were last accepted: the oldest goes first when full. */
  private readonly byDigest = new Map<string, { user: UserHash; until: number }>();

  constructor(
    private readonly ttlMs = ACCEPTED_KEY_TTL_MS,
    private readonly max = MAX_KEYS,
  ) {}

  /** The proxy let a request with `key` through for `user`. */
  accepted(key: string, user: UserHash, now = Date.now()): void {
    const d = digest(key);
    this.byDigest.delete(d);
    this.byDigest.set(d, { user, until: now + this.ttlMs });
    if (this.byDigest.size > this.max) this.byDigest.delete(this.byDigest.keys().next().value!);
  }

  /** The proxy refused `key` (invalid, expired, unknown): it goes through the api-backend again. */
  refused(key: string): void {
    this.byDigest.delete(digest(key));
  }

  /** The user `key` was accepted for, if that was less than `ttlMs` ago. */
  userOf(key: string, now = Date.now()): UserHash | undefined {
    const d = digest(key);
    const entry = this.byDigest.get(d);
    if (entry === undefined) return undefined;
    if (entry.until > now) return entry.user;
    this.byDigest.delete(d);
    return undefined;
  }
}
