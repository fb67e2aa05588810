/**
 * The client keys this proxy accepts (issue 9), in memory only, with the scope each key's
 * computer sent beside its verifier (issue 10: another of the user's computers may serve it): at the first key presented on a
 * tunnel, the proxy opens one long-lived stream to the bridge (CONTROL_AUTHORITY, KEY_SET_PATH),
 * kept for the tunnel's life, and each NDJSON line on it replaces the whole set. The stream is reopened if it breaks while the tunnel
 * stays; an older bridge answers 404, which means no keys. Nothing of a key is written or logged:
 * a restarted server learns the set again when the bridge reconnects.
 */
import type { ClientHttp2Stream } from 'node:http2';
import { CONTROL_AUTHORITY, KEY_SET_PATH, matchesVerifier, parseClientKey, parseKeySetLine, type KeyScope } from '@cloudtolocalllm/bridge/connection/client-key';
import type { Logger } from '../log.js';
import type { BridgeLink } from './bridge-link.js';

const MAX_LINE = 1 << 20;
/** How many revoked ids a set remembers. */
const MAX_GONE = 1_000;

/** `scope`: what the key may do, when its computer sent it (then the user's other computers may serve it too). */
export type KeyCheck = { ok: true; id: string; scope?: KeyScope } | { ok: false; reason: 'key-invalid' | 'key-expired' | 'auth-key-malformed' | 'auth-key-truncated' | 'auth-key-checksum'; message: string };

export class KeySet {
  private keys = new Map<string, { verifier: string; expiresAt?: number; scope?: KeyScope }>();
  /** This computer's bridge serves keys made on the user's other computers (KeySetLine.servesScopes). */
  servesScopes = false;
  /**
   * Ids that left the set on this tunnel (revoked, expired): refused at once rather than after
   * the wait for a new key, so a revocation shows on every computer as fast as on its own.
   */
  private gone = new Set<string>();
  /** The first line of the current tunnel has come (or the bridge has no keys stream). */
  private known = false;
  private waiters: Array<() => void> = [];
  /** Requests waiting for the next line: a key made a moment ago is on its way from the bridge. */
  private changeWaiters: Array<() => void> = [];
  private stream: ClientHttp2Stream | undefined;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly link: BridgeLink,
    private readonly log: Logger,
    private readonly retryMs = 1_000,
  ) {
    // Opened at the first key presented on a tunnel, not at every connect: a user without keys
    // costs no stream, and a bridge's first stream stays a client's.
    link.on('disconnected', () => this.reset());
  }

  get size(): number {
    return this.keys.size;
  }

  /** Checks a presented key against the set; waits (briefly) for the set of a tunnel just opened. */
  async check(presented: string, waitMs = 5_000, newKeyWaitMs = 2_000): Promise<KeyCheck> {
    const key = parseClientKey(presented);
    if (!key.ok) return { ok: false, reason: `auth-${key.reason}`, message: key.message };
    await this.ready(waitMs);
    // An id not in the set may be a key made a moment ago: its line comes within the bridge's
    // debounce. Waiting for it also slows down anyone trying ids.
    const deadline = this.gone.has(key.id) ? 0 : Date.now() + newKeyWaitMs;
    while (!this.keys.has(key.id) && this.link.connected && Date.now() < deadline) await this.settled(this.changeWaiters, deadline - Date.now());
    const entry = this.keys.get(key.id);
    // Compare even for an unknown id, so timing does not tell which ids exist.
    const matches = matchesVerifier(key, entry?.verifier ?? '0'.repeat(64));
    if (!entry || !matches) return { ok: false, reason: 'key-invalid', message: 'the key is not valid for this endpoint: it was revoked, or it is not this user\'s key' };
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      return { ok: false, reason: 'key-expired', message: `the key expired at ${new Date(entry.expiresAt).toISOString()}; make a new one on your computer` };
    }
    return { ok: true, id: key.id, ...(entry.scope ? { scope: entry.scope } : {}) };
  }

  close(): void {
    this.reset();
  }

  /** Did the key presented leave this set (revoked while this tunnel was open)? */
  revoked(presented: string): boolean {
    const key = parseClientKey(presented);
    return key.ok && this.gone.has(key.id) && !this.keys.has(key.id);
  }

  /**
   * Has the set been read since this tunnel opened? Opens the stream when it has not, and waits
   * up to `waitMs` for it: a computer must have said whether it serves other computers' keys
   * before a key made elsewhere is routed to it.
   */
  async ready(waitMs = 5_000): Promise<void> {
    if (this.known) return;
    if (!this.stream && this.link.connected) this.open();
    await this.settled(this.waiters, waitMs);
  }

  private settled(waiters: Array<() => void>, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      waiters.push(done);
    });
  }

  private markKnown(): void {
    this.known = true;
    for (const w of this.waiters.splice(0)) w();
  }

  private reset(): void {
    clearTimeout(this.retry);
    this.stream?.close();
    this.stream = undefined;
    this.keys = new Map();
    this.gone = new Set();
    this.servesScopes = false;
    this.known = false;
    for (const w of this.changeWaiters.splice(0)) w();
  }

  private open(): void {
    clearTimeout(this.retry);
    const stream = this.link.request({ ':method': 'GET', ':path': KEY_SET_PATH, ':authority': CONTROL_AUTHORITY }, { endStream: true });
    if (!stream) return;
    this.stream = stream;
    let buffered = '';
    let unsupported = false;
    stream.setEncoding('utf8');
    stream.on('error', () => undefined);
    stream.on('response', (headers) => {
      if (headers[':status'] !== 200) {
        // An older bridge: it serves no key set, so no key is accepted.
        unsupported = true;
        this.keys = new Map();
        this.markKnown();
        stream.close();
        this.log.info('the bridge serves no client keys', { status: headers[':status'] });
      }
    });
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > MAX_LINE) {
        this.log.warn('the bridge sent a key-set line over the limit; dropping the stream');
        stream.close();
        return;
      }
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const parsed = parseKeySetLine(line);
        if (!parsed.ok) {
          this.log.warn('the bridge sent an unusable key-set line', { problem: parsed.message });
          continue;
        }
        const before = this.keys;
        this.keys = new Map(
          parsed.value.keys.map((k) => [k.id, { verifier: k.verifier, ...(k.expiresAt !== undefined ? { expiresAt: k.expiresAt } : {}), ...(k.scope ? { scope: k.scope } : {}) }]),
        );
        this.servesScopes = parsed.value.servesScopes === true;
        for (const id of before.keys()) if (!this.keys.has(id)) this.gone.add(id);
        // Bounded: the oldest go first (a Set keeps insertion order).
        for (const id of this.gone) {
          if (this.gone.size <= MAX_GONE) break;
          this.gone.delete(id);
        }
        this.markKnown();
        for (const w of this.changeWaiters.splice(0)) w();
      }
    });
    stream.on('close', () => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      if (unsupported || !this.link.connected) return;
      // Broken while the tunnel stays: ask again; the set in hand stays valid meanwhile.
      this.retry = setTimeout(() => {
        if (this.link.connected && !this.stream) this.open();
      }, this.retryMs);
      this.retry.unref();
    });
  }
}
