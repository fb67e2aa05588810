/**
 * Where the desktop app keeps its tokens between runs: the operating system's keychain (macOS
 * Keychain, Windows Credential Manager, a Secret Service such as GNOME Keyring or KWallet on
 * Linux) through keytar, and nowhere else. Without a keychain the tokens live in memory for
 * this run only; they are never written to a file.
 *
 * Nothing here logs a token or puts one in an error message.
 * Electron-free: keytar is a plain Node native module.
 */
import type { TokenSet } from './token-set.js';

/** The keychain "service" every entry of the app is filed under. */
export const KEYCHAIN_SERVICE = 'CloudToLocalLLM';
/** Account of the entry the probe reads; nothing is ever stored there. */
export const KEYCHAIN_PROBE_ACCOUNT = 'keychain-probe';
/**
 * How long the probe waits for the keychain. A Secret Service that is activated on first use
 * answers within a second; a D-Bus session bus that accepts the connection but never speaks
 * leaves keytar waiting forever.
 */
export const DEFAULT_KEYCHAIN_PROBE_TIMEOUT_MS = 3_000;
/**
 * How long a load, save or clear may take once the keychain has answered the probe. Long, since
 * the keychain may ask the person to unlock it first.
 */
export const DEFAULT_KEYCHAIN_OPERATION_TIMEOUT_MS = 60_000;

/** The issuer and OAuth client a sign-in belongs to: one stored sign-in per pair. */
export interface TokenClient {
  issuer: string;
  clientId: string;
}

export interface TokenStore {
  /**
   * The stored tokens of `client`, or undefined when there are none (or the entry was unusable
   * and is now gone). Without `client`: the client the store was opened for, else the newest
   * sign-in stored.
   */
  load(client?: TokenClient): Promise<TokenSet | undefined>;
  /** Stores `tokens` as the sign-in of their own issuer and client, replacing the previous one. */
  save(tokens: TokenSet): Promise<void>;
  /** Forgets the sign-in of `client`; without it, of the client opened for, else every sign-in stored. */
  clear(client?: TokenClient): Promise<void>;
  readonly kind: 'keychain' | 'memory';
  /** For people: where the tokens are kept and what that means for them. */
  readonly detail: string;
}

/** The part of keytar this module uses; the real module fits, and so does a test double. */
export type KeytarApi = Pick<typeof import('keytar'), 'getPassword' | 'setPassword' | 'deletePassword' | 'findCredentials'>;

export type TokenStoreErrorCode =
  /** The keychain did not answer in time. */
  | 'keychain-timeout'
  /** The keychain answered with an error (locked collection, no Secret Service, ...). */
  | 'keychain-failed';

export class TokenStoreError extends Error {
  override readonly name = 'TokenStoreError';
  readonly code: TokenStoreErrorCode;

  constructor(code: TokenStoreErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Settles like `operation`, or rejects with 'keychain-timeout' after `timeoutMs`. */
function withTimeout<T>(operation: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new TokenStoreError('keychain-timeout', `The keychain did not answer within ${formatMs(timeoutMs)} (${what}).`)),
      timeoutMs,
    );
  });
  // A keychain call that answers after the timeout must not become an unhandled rejection.
  operation.catch(() => {});
  return Promise.race([operation, timeout]).finally(() => clearTimeout(timer));
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** The name people know the platform's keychain by. */
export function keychainName(platform: NodeJS.Platform = process.platform): string {
  if (platform === 'darwin') return 'the macOS Keychain';
  if (platform === 'win32') return 'the Windows Credential Manager';
  return 'the Secret Service keyring (GNOME Keyring or KWallet)';
}

/** The keychain account of a token set: one entry per issuer and client. */
export function keychainAccount(issuer: string, clientId: string): string {
  return `${issuer} ${clientId}`;
}

function isOptionalString(value: unknown): boolean {
  return value === undefined || typeof value === 'string';
}

/**
 * Reads a stored entry back into a TokenSet, or undefined when it is not one: not JSON, a field
 * missing or of the wrong type, or tokens of another issuer or client than the entry's account.
 */
export function parseStoredTokenSet(json: string, client: TokenClient): TokenSet | undefined {
  const { issuer, clientId } = client;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (v['issuer'] !== issuer || v['clientId'] !== clientId) return undefined;
  if (typeof v['accessToken'] !== 'string' || v['accessToken'] === '') return undefined;
  if (typeof v['expiresAt'] !== 'number' || !Number.isFinite(v['expiresAt'])) return undefined;
  for (const key of ['refreshToken', 'idToken', 'subject', 'scope']) {
    if (!isOptionalString(v[key])) return undefined;
  }
  const tokens: TokenSet = { issuer, clientId, accessToken: v['accessToken'], expiresAt: v['expiresAt'] };
  if (typeof v['refreshToken'] === 'string') tokens.refreshToken = v['refreshToken'];
  if (typeof v['idToken'] === 'string') tokens.idToken = v['idToken'];
  if (typeof v['subject'] === 'string') tokens.subject = v['subject'];
  if (typeof v['scope'] === 'string') tokens.scope = v['scope'];
  return tokens;
}

/** Only the TokenSet's own fields go into the keychain, whatever else the object carries. */
function serialize(tokens: TokenSet): string {
  const { issuer, clientId, accessToken, refreshToken, idToken, expiresAt, subject, scope } = tokens;
  return JSON.stringify({ issuer, clientId, accessToken, refreshToken, idToken, expiresAt, subject, scope });
}

/** The client a keychain account names, or undefined for an account that is not "<issuer> <clientId>". */
export function parseKeychainAccount(account: string): TokenClient | undefined {
  const space = account.lastIndexOf(' ');
  if (space <= 0 || space === account.length - 1) return undefined;
  return { issuer: account.slice(0, space), clientId: account.slice(space + 1) };
}

/** Of several stored sign-ins, the one whose access token was issued last. */
function newest(candidates: readonly TokenSet[]): TokenSet | undefined {
  return candidates.reduce<TokenSet | undefined>((best, t) => (best === undefined || t.expiresAt > best.expiresAt ? t : best), undefined);
}

export interface KeychainTokenStoreOptions {
  keytar: KeytarApi;
  /** The client `load()` and `clear()` mean without an argument. Default: none (see TokenStore). */
  client?: TokenClient;
  /** Default 'CloudToLocalLLM'. */
  service?: string;
  /** Default 60 s per keychain call. */
  operationTimeoutMs?: number;
}

/** Keychain entries: service 'CloudToLocalLLM', account "<issuer> <clientId>", the TokenSet as JSON. */
export class KeychainTokenStore implements TokenStore {
  readonly kind = 'keychain';
  readonly detail: string;
  readonly service: string;
  readonly #keytar: KeytarApi;
  readonly #client: TokenClient | undefined;
  readonly #timeoutMs: number;

  constructor(options: KeychainTokenStoreOptions) {
    this.#keytar = options.keytar;
    this.#client = options.client;
    this.#timeoutMs = options.operationTimeoutMs ?? DEFAULT_KEYCHAIN_OPERATION_TIMEOUT_MS;
    this.service = options.service ?? KEYCHAIN_SERVICE;
    this.detail = `Your sign-in is kept in ${keychainName()}, so you stay signed in when CloudToLocalLLM restarts.`;
  }

  async #call<T>(what: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await withTimeout(Promise.resolve().then(operation), this.#timeoutMs, what);
    } catch (err) {
      if (err instanceof TokenStoreError) throw err;
      throw new TokenStoreError('keychain-failed', `The keychain refused to ${what}: ${reason(err)}.`, { cause: err });
    }
  }

  /** The entries of the app's service that name a client, whatever they hold. */
  async #entries(): Promise<{ client: TokenClient; account: string; json: string }[]> {
    const credentials = await this.#call('list the stored sign-ins', () => this.#keytar.findCredentials(this.service));
    return credentials.flatMap(({ account, password }) => {
      const client = parseKeychainAccount(account);
      return client ? [{ client, account, json: password }] : [];
    });
  }

  /** A corrupt entry (not a TokenSet of the client its account names) is deleted and reads as no tokens. */
  async load(client: TokenClient | undefined = this.#client): Promise<TokenSet | undefined> {
    if (client === undefined) {
      const found: TokenSet[] = [];
      for (const entry of await this.#entries()) {
        const tokens = parseStoredTokenSet(entry.json, entry.client);
        if (tokens) found.push(tokens);
        else await this.#delete(entry.account);
      }
      return newest(found);
    }
    const account = keychainAccount(client.issuer, client.clientId);
    const stored = await this.#call('read the sign-in', () => this.#keytar.getPassword(this.service, account));
    if (stored === null) return undefined;
    const tokens = parseStoredTokenSet(stored, client);
    if (tokens === undefined) await this.#delete(account);
    return tokens;
  }

  async save(tokens: TokenSet): Promise<void> {
    const account = keychainAccount(tokens.issuer, tokens.clientId);
    const json = serialize(tokens);
    await this.#call('store the sign-in', () => this.#keytar.setPassword(this.service, account, json));
  }

  async clear(client: TokenClient | undefined = this.#client): Promise<void> {
    if (client !== undefined) {
      await this.#delete(keychainAccount(client.issuer, client.clientId));
      return;
    }
    for (const entry of await this.#entries()) await this.#delete(entry.account);
  }

  async #delete(account: string): Promise<void> {
    await this.#call('delete the sign-in', () => this.#keytar.deletePassword(this.service, account));
  }
}

/** Tokens for this run of the app only. */
export class MemoryTokenStore implements TokenStore {
  readonly kind = 'memory';
  readonly detail: string;
  readonly #client: TokenClient | undefined;
  readonly #tokens = new Map<string, TokenSet>();

  constructor(options: { detail?: string; client?: TokenClient } = {}) {
    this.detail = options.detail ?? 'Your sign-in is kept in memory only: you stay signed in until CloudToLocalLLM quits.';
    this.#client = options.client;
  }

  async load(client: TokenClient | undefined = this.#client): Promise<TokenSet | undefined> {
    const tokens = client === undefined ? newest([...this.#tokens.values()]) : this.#tokens.get(keychainAccount(client.issuer, client.clientId));
    return tokens === undefined ? undefined : { ...tokens };
  }

  async save(tokens: TokenSet): Promise<void> {
    this.#tokens.set(keychainAccount(tokens.issuer, tokens.clientId), { ...tokens });
  }

  async clear(client: TokenClient | undefined = this.#client): Promise<void> {
    if (client === undefined) this.#tokens.clear();
    else this.#tokens.delete(keychainAccount(client.issuer, client.clientId));
  }
}

export interface OpenTokenStoreOptions {
  /** The client `load()` and `clear()` mean without an argument. Default: none (see TokenStore). */
  client?: TokenClient;
  /** Default: the keytar package, loaded on first use. */
  keytar?: KeytarApi;
  /** Default 3 s. */
  probeTimeoutMs?: number;
  /** Default 60 s. */
  operationTimeoutMs?: number;
  /** Default 'CloudToLocalLLM'. */
  service?: string;
}

export type KeychainProbe = { ok: true; keytar: KeytarApi } | { ok: false; reason: string };

async function loadKeytar(): Promise<KeytarApi> {
  // keytar is CommonJS: its functions are on the default export.
  const module = await import('keytar');
  return module.default;
}

/**
 * Asks the keychain for an entry nobody stores (a read changes nothing and needs no unlocking)
 * to see whether it answers at all. Never throws.
 */
export async function probeKeychain(
  options: { keytar?: KeytarApi; timeoutMs?: number; service?: string } = {},
): Promise<KeychainProbe> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_KEYCHAIN_PROBE_TIMEOUT_MS;
  let keytar: KeytarApi;
  try {
    keytar = options.keytar ?? (await loadKeytar());
  } catch (err) {
    return { ok: false, reason: `keytar could not be loaded: ${reason(err)}` };
  }
  try {
    await withTimeout(
      Promise.resolve().then(() => keytar.getPassword(options.service ?? KEYCHAIN_SERVICE, KEYCHAIN_PROBE_ACCOUNT)),
      timeoutMs,
      'a test read',
    );
    return { ok: true, keytar };
  } catch (err) {
    if (err instanceof TokenStoreError) return { ok: false, reason: `no answer within ${formatMs(timeoutMs)}` };
    return { ok: false, reason: reason(err) };
  }
}

/**
 * The keychain store when the keychain answers, else a memory store whose `detail` tells the
 * person why and what to do about it. Takes at most `probeTimeoutMs` (default 3 s).
 */
export async function openTokenStore(options: OpenTokenStoreOptions = {}): Promise<TokenStore> {
  const probe = await probeKeychain({
    ...(options.keytar ? { keytar: options.keytar } : {}),
    ...(options.probeTimeoutMs !== undefined ? { timeoutMs: options.probeTimeoutMs } : {}),
    ...(options.service !== undefined ? { service: options.service } : {}),
  });
  if (!probe.ok) {
    return new MemoryTokenStore({ detail: noKeychainDetail(probe.reason), ...(options.client ? { client: options.client } : {}) });
  }
  return new KeychainTokenStore({
    keytar: probe.keytar,
    ...(options.client ? { client: options.client } : {}),
    ...(options.service !== undefined ? { service: options.service } : {}),
    ...(options.operationTimeoutMs !== undefined ? { operationTimeoutMs: options.operationTimeoutMs } : {}),
  });
}

/** What a person without a keychain is told. */
export function noKeychainDetail(why: string, platform: NodeJS.Platform = process.platform): string {
  const fix =
    platform === 'linux'
      ? 'Install and unlock a Secret Service (GNOME Keyring or KWallet) to stay signed in.'
      : `Make sure ${keychainName(platform)} is available to stay signed in.`;
  return `No keychain answered (${why.replace(/\.$/, '')}): you stay signed in only until CloudToLocalLLM quits. ${fix}`;
}
