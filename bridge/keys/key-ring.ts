/**
 * The running bridge's view of the client keys: reads keys.json, watches the configuration
 * directory (the CLI and Settings replace the file by rename), and says `change` within a
 * debounce of a write; the bridge then sends the new set to its proxy (docs/tunnel.md, "Client
 * keys"). Also keeps each key's usage and writes it to usage.json, which only the bridge writes.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, watch, type FSWatcher } from 'node:fs';
import type { KeyScope, KeySetLine } from '../connection/client-key.js';
import { KEYS_FILE, KeyStore, type KeyDefinition, type KeyUsage } from './key-store.js';

export interface KeyRingEvents {
  change: [];
  /** keys.json cannot be used: no key is accepted until it is fixed (fail closed). */
  problem: [message: string];
}

export interface KeyRingOptions {
  /** Wait this long after a file event before reading (writes come in bursts). */
  debounceMs?: number;
  /** How often usage is written at most. */
  usageFlushMs?: number;
}

export class KeyRing extends EventEmitter<KeyRingEvents> {
  private keys: KeyDefinition[] = [];
  private text = '';
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private usage: Record<string, KeyUsage>;
  private usageTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly store: KeyStore,
    private readonly options: KeyRingOptions = {},
  ) {
    super();
    this.usage = safe(() => store.usage()) ?? {};
    this.reload();
  }

  /** Starts watching; the directory is made if it is not there yet. */
  start(): void {
    if (this.watcher) return;
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the user's own configuration directory
    mkdirSync(this.store.dir, { recursive: true, mode: 0o700 });
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the same directory
    this.watcher = watch(this.store.dir, (_event, name) => {
      if (name !== null && name !== KEYS_FILE) return;
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.reload(), this.options.debounceMs ?? 100);
    });
    this.watcher.on('error', (e) => this.emit('problem', `cannot watch ${this.store.dir}: ${e.message}`));
    // Anything written between the constructor and the watch.
    this.reload();
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.debounce);
    this.flushUsage();
  }

  get(id: string): KeyDefinition | undefined {
    return this.keys.find((k) => k.id === id);
  }

  /**
   * What the proxy gets: verifiers of the keys not expired, never secrets, each with its scope so
   * the user's other computers can serve it too (docs/tunnel.md, "One key, every computer").
   */
  line(now = Date.now()): KeySetLine {
    return {
      keys: this.keys
        .filter((k) => k.expiresAt === undefined || k.expiresAt > now)
        .map((k) => ({ id: k.id, verifier: k.verifier, ...(k.expiresAt !== undefined ? { expiresAt: k.expiresAt } : {}), scope: scopeOf(k) })),
      servesScopes: true,
    };
  }

  /** One request made with key `id`, and its tokens. */
  recordUse(id: string, tokensIn: number, tokensOut: number, now = Date.now()): void {
    const u = (this.usage[id] ??= { requests: 0, tokensIn: 0, tokensOut: 0 });
    u.requests += 1;
    u.lastUsedAt = now;
    u.tokensIn += tokensIn;
    u.tokensOut += tokensOut;
    this.usageTimer ??= setTimeout(() => this.flushUsage(), this.options.usageFlushMs ?? 1_000);
  }

  flushUsage(): void {
    clearTimeout(this.usageTimer);
    this.usageTimer = undefined;
    // Usage of revoked keys goes with them.
    const live = Object.fromEntries(Object.entries(this.usage).filter(([id]) => this.keys.some((k) => k.id === id)));
    try {
      this.store.writeUsage(live);
    } catch (e) {
      this.emit('problem', `cannot write key usage: ${(e as Error).message}`);
    }
  }

  private reload(): void {
    let keys: KeyDefinition[];
    try {
      keys = this.store.keys();
    } catch (e) {
      keys = [];
      this.emit('problem', (e as Error).message);
    }
    const text = JSON.stringify(keys);
    if (text === this.text) return;
    this.text = text;
    this.keys = keys;
    this.emit('change');
  }
}

/** The part of a key's definition another computer needs to apply it (no verifier, no dates but expiry). */
export function scopeOf(k: KeyDefinition): KeyScope {
  return {
    name: k.name,
    allow: [...k.allow],
    ...(k.models ? { models: [...k.models] } : {}),
    ...(k.machines ? { machines: [...k.machines] } : {}),
    ...(k.expiresAt !== undefined ? { expiresAt: k.expiresAt } : {}),
  };
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
