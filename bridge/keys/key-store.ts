/**
 * Client keys on the user's computer (issue 9), in the local configuration directory
 * (config-dir.ts), three files, each written atomically (temp file, then rename) so the keys CLI,
 * the desktop's Settings and a running bridge never see half a file:
 *
 *   account.json  who is signed in here (user hash and routing part: not secret), written at sign-in
 *   keys.json     the key definitions: id, name, verifier (never the secret), scopes, expiry, created
 *   usage.json    requests, last used, tokens in and out per key; written by the bridge alone
 *
 * keys.json is written by whoever changes the set (CLI, Settings); the bridge only reads it.
 * Changes to it are read-modify-write under a lock file (keys.json.lock), so two writers at the
 * same instant (two `keys create`, the CLI beside Settings) both land instead of one undoing the other.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createClientKey, routeOf } from '../connection/client-key.js';
import { MANAGEMENT_ENDPOINTS, type ManagementEndpoint } from '../ingress/ollama-routes.js';
import { keyNameProblem } from './key-input.js';

export interface Account {
  /** SHA-256 hex of the user id: what the cloud calls this user. */
  userHash: string;
  /** The routing part of this user's keys (client-key.ts). */
  route: string;
  /** The endpoint's base URL (…/ollama) when known, for messages and Settings. */
  endpoint?: string;
  signedInAt: number;
}

export interface KeyDefinition {
  id: string;
  name: string;
  /** SHA-256 of route, id and secret (client-key.ts). */
  verifier: string;
  /** Models the key may use; absent: every model. Names as Ollama lists them (`:latest` implied). */
  models?: string[];
  /** Model management the key may use (the computer's own policy must allow it too). */
  allow: ManagementEndpoint[];
  /** The computers (names, as on the endpoint) the key may use; absent: all of the user's. */
  machines?: string[];
  expiresAt?: number;
  createdAt: number;
}

export interface KeyUsage {
  requests: number;
  lastUsedAt?: number;
  tokensIn: number;
  tokensOut: number;
}

export const ACCOUNT_FILE = 'account.json';
export const KEYS_FILE = 'keys.json';
export const USAGE_FILE = 'usage.json';

/** A file of ours that is there but cannot be used: the message names it and says what is wrong. */
export class KeyStoreError extends Error {}

function readJson(file: string): unknown {
  let text: string;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- a file of ours in the user's own configuration directory
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KeyStoreError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new KeyStoreError(`${file} is not valid JSON; fix or remove it`);
  }
}

/** Temp file in the same directory, then rename: readers see the old file or the new one, never half. */
export function writeJsonAtomic(file: string, value: unknown): void {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- a temp file beside a file of ours
    writeFileSync(temp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the same two paths
    renameSync(temp, file);
  } catch (e) {
    rmSync(temp, { force: true });
    throw e;
  }
}

/** How long a writer waits for another's lock, and when a lock is taken to be left by a crash. */
const LOCK_WAIT_MS = 10_000;
const LOCK_STALE_MS = 30_000;

const pause = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Whether the lock's owner (the pid written in it) is still running on this computer. */
function ownerAlive(lock: string): boolean {
  let pid: number;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- our lock file
    pid = Number(readFileSync(lock, 'utf8').split(' ')[0]);
  } catch {
    return true; // being written or just removed: try again
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` holding `lock` (created exclusively; holds "pid time"). A lock whose owner is gone or
 * that is older than LOCK_STALE_MS is removed; one held longer than LOCK_WAIT_MS by a live writer
 * is an error that says so rather than a change made without it.
 */
export function withLock<T>(lock: string, fn: () => T): T {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    let fd: number | undefined;
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- our lock file
      fd = openSync(lock, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (fd !== undefined) {
      try {
        writeSync(fd, `${process.pid} ${Date.now()}`);
        closeSync(fd);
        return fn();
      } finally {
        rmSync(lock, { force: true });
      }
    }
    let age = 0;
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- our lock file
      age = Date.now() - statSync(lock).mtimeMs;
    } catch {
      continue; // released between our attempt and the look
    }
    if (age > LOCK_STALE_MS || (age > 1_000 && !ownerAlive(lock))) {
      rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new KeyStoreError(`${lock} has been held by another program for over ${LOCK_WAIT_MS / 1000} s; if none is running, remove it`);
    pause(wait);
  }
}

function validKey(raw: unknown): raw is KeyDefinition {
  const k = raw as Partial<KeyDefinition> | null;
  return (
    typeof k === 'object' && k !== null &&
    typeof k.id === 'string' && /^[A-Za-z0-9_-]{8}$/.test(k.id) &&
    typeof k.name === 'string' &&
    typeof k.verifier === 'string' && /^[0-9a-f]{64}$/.test(k.verifier) &&
    (k.models === undefined || (Array.isArray(k.models) && k.models.every((m) => typeof m === 'string'))) &&
    Array.isArray(k.allow) && k.allow.every((a) => (MANAGEMENT_ENDPOINTS as readonly string[]).includes(a)) &&
    (k.machines === undefined || (Array.isArray(k.machines) && k.machines.every((m) => typeof m === 'string'))) &&
    (k.expiresAt === undefined || typeof k.expiresAt === 'number') &&
    typeof k.createdAt === 'number'
  );
}

export interface NewKey {
  name: string;
  models?: string[];
  allow?: ManagementEndpoint[];
  machines?: string[];
  expiresAt?: number;
}

export class KeyStore {
  constructor(readonly dir: string) {}

  get keysFile(): string {
    return join(this.dir, KEYS_FILE);
  }

  private ensureDir(): void {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the user's own configuration directory
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  account(): Account | undefined {
    const file = join(this.dir, ACCOUNT_FILE);
    const a = readJson(file) as Partial<Account> | undefined;
    if (a === undefined) return undefined;
    if (typeof a.userHash !== 'string' || !/^[0-9a-f]{64}$/.test(a.userHash) || typeof a.route !== 'string') {
      throw new KeyStoreError(`${file} does not name a signed-in user; sign in again`);
    }
    return a as Account;
  }

  /**
   * At sign-in, from the user id (the token's `sub`): its user hash is SHA-256 hex, as the cloud
   * computes it (@cloudtolocalllm/proxy-spec's userHash, which the bridge package may not import;
   * test/keys/key-store.test.ts holds the two equal).
   */
  recordSubject(subject: string, endpoint?: string): Account {
    return this.recordSignIn(createHash('sha256').update(subject, 'utf8').digest('hex'), endpoint);
  }

  /** Called at sign-in (desktop, start:headless): keys made from now on are for this user. */
  recordSignIn(userHash: string, endpoint?: string): Account {
    this.ensureDir();
    const account: Account = { userHash, route: routeOf(userHash), ...(endpoint ? { endpoint } : {}), signedInAt: Date.now() };
    writeJsonAtomic(join(this.dir, ACCOUNT_FILE), account);
    return account;
  }

  keys(): KeyDefinition[] {
    const file = this.keysFile;
    const raw = readJson(file) as { keys?: unknown } | undefined;
    if (raw === undefined) return [];
    if (!Array.isArray(raw.keys) || !raw.keys.every(validKey)) throw new KeyStoreError(`${file} is not a key list this version understands; fix or remove it`);
    return raw.keys;
  }

  /** Reads the key list, lets `change` return the new one, writes it: all under the keys' lock. */
  private changeKeys<T>(change: (keys: KeyDefinition[]) => { keys: KeyDefinition[]; result: T }): T {
    this.ensureDir();
    return withLock(`${this.keysFile}.lock`, () => {
      const { keys, result } = change(this.keys());
      writeJsonAtomic(this.keysFile, { version: 1, keys });
      return result;
    });
  }

  /** Makes a key for the signed-in user: the definition is stored, the key itself only returned. */
  create(spec: NewKey, now = Date.now()): { key: string; definition: KeyDefinition } {
    const account = this.account();
    if (!account) {
      throw new KeyStoreError(
        `nobody is signed in with ${this.dir}: sign in first (the desktop app, or npm run start:headless with the same CTLL_CONFIG_DIR), then make keys`,
      );
    }
    const nameProblem = keyNameProblem(spec.name);
    if (nameProblem) throw new KeyStoreError(nameProblem);
    if (spec.expiresAt !== undefined && spec.expiresAt <= now) throw new KeyStoreError('the expiry is in the past');
    const made = createClientKey(account.route);
    const definition: KeyDefinition = {
      id: made.id,
      name: spec.name,
      verifier: made.verifier,
      ...(spec.models?.length ? { models: spec.models } : {}),
      allow: spec.allow ?? [],
      ...(spec.machines?.length ? { machines: spec.machines } : {}),
      ...(spec.expiresAt !== undefined ? { expiresAt: spec.expiresAt } : {}),
      createdAt: now,
    };
    this.changeKeys((keys) => {
      if (keys.some((k) => k.name === spec.name)) throw new KeyStoreError(`a key named "${spec.name}" exists already; choose another name or revoke it first`);
      return { keys: [...keys, definition], result: undefined };
    });
    return { key: made.key, definition };
  }

  /** Removes the key named or with the id given; returns it, or undefined when there is none. */
  revoke(nameOrId: string): KeyDefinition | undefined {
    return this.changeKeys((keys) => {
      const found = keys.find((k) => k.id === nameOrId) ?? keys.find((k) => k.name === nameOrId);
      return { keys: found ? keys.filter((k) => k !== found) : keys, result: found };
    });
  }

  usage(): Record<string, KeyUsage> {
    const raw = readJson(join(this.dir, USAGE_FILE)) as { keys?: Record<string, KeyUsage> } | undefined;
    return raw?.keys && typeof raw.keys === 'object' ? raw.keys : {};
  }

  /** The bridge's own file: only the bridge calls this. */
  writeUsage(usage: Record<string, KeyUsage>): void {
    this.ensureDir();
    writeJsonAtomic(join(this.dir, USAGE_FILE), { version: 1, keys: usage });
  }
}
