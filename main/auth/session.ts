/**
 * The app's sign-in state: who is signed in, their tokens in memory and in the token store, and
 * the one place that refreshes them. The main process shows `state` and `user` in the tray; the
 * bridge asks `accessToken()` for every connection.
 *
 * Refresh tokens rotate: every refresh consumes the old refresh token, and presenting a consumed
 * one again makes the issuer revoke the whole grant (RFC 9700 §4.14.2). So there is only ever one
 * refresh in flight, and its result is stored before anyone can refresh again.
 *
 * Electron-free; no token is logged or put in an error message.
 */
import { EventEmitter } from 'node:events';

import { AuthError, isAuthError } from './auth-error.js';
import {
  refresh as refreshTokens,
  signIn as signInWithBrowser,
  signOut as revokeTokens,
  type SignInOptions,
  type SignOutResult,
} from './pkce-sign-in.js';
import type { TokenSet } from './token-set.js';
import type { TokenClient, TokenStore } from './token-store.js';

export type AuthState = 'signed-out' | 'signing-in' | 'signed-in';

export interface AuthUser {
  /** The `sub` claim: stable, the identity the API sees. */
  subject: string;
  /** For display: the ID token's name (or preferred_username, nickname, email); else the subject. */
  name: string;
}

export interface AuthSessionEvents {
  state: [state: AuthState, user: AuthUser | undefined];
  /** Problems the session handled itself (it still works, or fell back to signed out). */
  error: [error: Error];
}

/** Refresh when the access token has less than this left. */
export const DEFAULT_REFRESH_MARGIN_MS = 60_000;

export interface AuthSessionOptions {
  issuer: string;
  clientId: string;
  audience: string;
  store: TokenStore;
  /** Shows the authorization URL to the person (the system browser). */
  openBrowser: (url: string) => void | Promise<void>;
  /** Default: the PKCE sign-in through the browser and a loopback redirect. */
  signInImpl?: (options: SignInOptions) => Promise<TokenSet>;
  /** Default: the refresh token grant. */
  refreshImpl?: (tokens: TokenSet) => Promise<TokenSet>;
  /** Default: revocation at the issuer. */
  signOutImpl?: (tokens: TokenSet) => Promise<SignOutResult>;
  /** Default 'openid profile offline_access'. */
  scope?: string;
  /** How long a sign-in waits for the browser. Default 5 minutes. */
  signInTimeoutMs?: number;
  /** Default 60 s. */
  refreshMarginMs?: number;
}

export interface RestoreResult {
  state: AuthState;
  /** Whether the stored tokens were refreshed on the way. */
  refreshed: boolean;
  /** What went wrong, when something did (also emitted as 'error'). */
  error?: Error;
}

export interface SignOutOutcome {
  /** Whether the issuer revoked the tokens; when false they stay valid until they expire. */
  revoked: boolean;
  /** Whether the token store forgot them. */
  cleared: boolean;
  /** Why `revoked` or `cleared` is false (also emitted as 'error'). */
  errors: Error[];
}

/** `accessToken()` when nobody is signed in. */
export class SignedOutError extends Error {
  override readonly name = 'SignedOutError';
  readonly code = 'signed-out';

  constructor(message = 'Nobody is signed in to CloudToLocalLLM: sign in first.') {
    super(message);
  }
}

/** Claims of a JWT payload, read without verification (the token came from our own sign-in). */
function jwtClaims(token: string | undefined): Record<string, unknown> | undefined {
  const payload = token?.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function firstString(...values: unknown[]): string | undefined {
  return values.find((v): v is string => typeof v === 'string' && v !== '');
}

/** Who the tokens belong to: the ID token first, the access token's `sub` as a last resort. */
export function userOf(tokens: TokenSet): AuthUser | undefined {
  const id = jwtClaims(tokens.idToken) ?? {};
  const subject = firstString(tokens.subject, id['sub'], jwtClaims(tokens.accessToken)?.['sub']);
  if (subject === undefined) return undefined;
  const name = firstString(id['name'], id['preferred_username'], id['nickname'], id['email']) ?? subject;
  return { subject, name };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Refresh failures that mean the grant is gone: the person has to sign in again. */
function grantIsGone(err: unknown): boolean {
  return isAuthError(err, 'refresh-failed') || isAuthError(err, 'no-refresh-token');
}

export class AuthSession extends EventEmitter<AuthSessionEvents> {
  readonly store: TokenStore;
  readonly #options: AuthSessionOptions;
  readonly #signIn: (options: SignInOptions) => Promise<TokenSet>;
  readonly #refresh: (tokens: TokenSet) => Promise<TokenSet>;
  readonly #revoke: (tokens: TokenSet) => Promise<SignOutResult>;
  readonly #marginMs: number;

  #state: AuthState = 'signed-out';
  #tokens: TokenSet | undefined;
  #restoring: Promise<RestoreResult> | undefined;
  #signingIn: { promise: Promise<AuthUser>; abort: AbortController } | undefined;
  #refreshing: Promise<TokenSet> | undefined;

  constructor(options: AuthSessionOptions) {
    super();
    this.#options = options;
    this.store = options.store;
    this.#signIn = options.signInImpl ?? signInWithBrowser;
    this.#refresh = options.refreshImpl ?? refreshTokens;
    this.#revoke = options.signOutImpl ?? revokeTokens;
    this.#marginMs = options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
  }

  get state(): AuthState {
    return this.#state;
  }

  /** Who is signed in: `subject` for identity, `name` for display. */
  get user(): AuthUser | undefined {
    return this.#account();
  }

  #account(): AuthUser | undefined {
    return this.#tokens === undefined ? undefined : userOf(this.#tokens);
  }

  get #client(): TokenClient {
    return { issuer: this.#options.issuer, clientId: this.#options.clientId };
  }

  #setState(state: AuthState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.emit('state', state, this.#account());
  }

  /** 'error' is informational here: without a listener it must not throw as EventEmitter's would. */
  #report(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #belongsHere(tokens: TokenSet): boolean {
    return tokens.issuer === this.#options.issuer && tokens.clientId === this.#options.clientId;
  }

  #fresh(tokens: TokenSet): boolean {
    return tokens.expiresAt - Date.now() > this.#marginMs;
  }

  /** Saves tokens; a store that fails leaves them in memory for this run and says so. */
  async #save(tokens: TokenSet): Promise<void> {
    try {
      await this.store.save(tokens);
    } catch (err) {
      this.#report(
        new Error(`Signed in, but the sign-in could not be stored (${describe(err)}): you stay signed in only until CloudToLocalLLM quits.`, {
          cause: err,
        }),
      );
    }
  }

  async #forget(): Promise<Error | undefined> {
    this.#tokens = undefined;
    this.#setState('signed-out');
    try {
      await this.store.clear(this.#client);
      return undefined;
    } catch (err) {
      return new Error(`The stored sign-in could not be deleted (${describe(err)}).`, { cause: err });
    }
  }

  /**
   * Picks up the sign-in of an earlier run from the store, refreshing it when it is (nearly)
   * expired. A refused refresh signs out; an unreachable issuer keeps the tokens (signed in)
   * and reports the problem. Call once at start; later calls share the first one's result.
   */
  restore(): Promise<RestoreResult> {
    this.#restoring ??= this.#restore();
    return this.#restoring;
  }

  async #restore(): Promise<RestoreResult> {
    let stored: TokenSet | undefined;
    try {
      stored = await this.store.load(this.#client);
    } catch (err) {
      const error = new Error(`The stored sign-in could not be read (${describe(err)}): sign in again.`, { cause: err });
      this.#report(error);
      return { state: this.#state, refreshed: false, error };
    }
    // A sign-in that finished meanwhile wins over what the store held.
    if (stored === undefined || this.#tokens !== undefined || this.#state === 'signing-in') {
      return { state: this.#state, refreshed: false };
    }
    this.#tokens = stored;
    if (this.#fresh(stored)) {
      this.#setState('signed-in');
      return { state: this.#state, refreshed: false };
    }
    try {
      await this.#refreshShared();
      this.#setState('signed-in');
      return { state: this.#state, refreshed: true };
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (grantIsGone(err)) {
        // #refreshShared has already signed out and reported.
        return { state: this.#state, refreshed: false, error };
      }
      // Keep the tokens: the issuer may be back before the person needs them.
      this.#setState('signed-in');
      return { state: this.#state, refreshed: false, error };
    }
  }

  /**
   * Signs in through the browser and stores the tokens. While a sign-in is waiting for the
   * browser, another call shares it; when someone is signed in already, resolves with them.
   */
  signIn(): Promise<AuthUser> {
    if (this.#signingIn) return this.#signingIn.promise;
    const current = this.#account();
    if (this.#state === 'signed-in' && current) return Promise.resolve(current);

    const abort = new AbortController();
    const promise = this.#runSignIn(abort.signal).finally(() => {
      this.#signingIn = undefined;
    });
    this.#signingIn = { promise, abort };
    return promise;
  }

  async #runSignIn(signal: AbortSignal): Promise<AuthUser> {
    this.#setState('signing-in');
    let tokens: TokenSet;
    try {
      tokens = await this.#signIn({
        issuer: this.#options.issuer,
        clientId: this.#options.clientId,
        audience: this.#options.audience,
        openBrowser: this.#options.openBrowser,
        signal,
        ...(this.#options.scope !== undefined ? { scope: this.#options.scope } : {}),
        ...(this.#options.signInTimeoutMs !== undefined ? { timeoutMs: this.#options.signInTimeoutMs } : {}),
      });
    } catch (err) {
      this.#setState(this.#tokens ? 'signed-in' : 'signed-out');
      if (!isAuthError(err, 'cancelled')) this.#report(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
    const user = userOf(tokens);
    if (!user || !this.#belongsHere(tokens)) {
      this.#setState(this.#tokens ? 'signed-in' : 'signed-out');
      const err = new AuthError('token-exchange-failed', 'The sign-in returned tokens without a user, or for another issuer or client.');
      this.#report(err);
      throw err;
    }
    this.#tokens = tokens;
    await this.#save(tokens);
    this.#setState('signed-in');
    return user;
  }

  /** Stops a sign-in that is waiting for the browser; it rejects with 'cancelled'. */
  cancelSignIn(): void {
    this.#signingIn?.abort.abort();
  }

  /**
   * An access token with more than the refresh margin (60 s) left, refreshing first when
   * needed. Rejects with SignedOutError when nobody is signed in, AuthError 'refresh-failed'
   * when the grant is gone (the session is then signed out), 'issuer-unreachable' when the
   * token has expired and the issuer cannot be reached. While the issuer is unreachable a
   * token that has not expired yet is still returned.
   */
  async accessToken(): Promise<string> {
    if (this.#restoring) await this.#restoring;
    const tokens = this.#tokens;
    if (tokens === undefined) throw new SignedOutError();
    if (this.#fresh(tokens)) return tokens.accessToken;
    try {
      return (await this.#refreshShared()).accessToken;
    } catch (err) {
      if (!grantIsGone(err) && tokens === this.#tokens && tokens.expiresAt > Date.now()) return tokens.accessToken;
      throw err;
    }
  }

  /** One refresh at a time; everyone who asks meanwhile gets its result. */
  #refreshShared(): Promise<TokenSet> {
    this.#refreshing ??= this.#runRefresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #runRefresh(): Promise<TokenSet> {
    const tokens = this.#tokens;
    if (tokens === undefined) throw new SignedOutError();
    let next: TokenSet;
    try {
      next = await this.#refresh(tokens);
    } catch (err) {
      if (tokens !== this.#tokens) throw err;
      if (grantIsGone(err)) {
        const cleared = await this.#forget();
        this.#report(new AuthError('refresh-failed', `You were signed out: ${describe(err)} Sign in again.`, { cause: err }));
        if (cleared) this.#report(cleared);
      } else {
        this.#report(err instanceof Error ? err : new Error(String(err)));
      }
      throw err;
    }
    // Signed out (or in anew) while the request was out: these tokens belong to nobody now.
    if (tokens !== this.#tokens) throw new SignedOutError('The sign-in ended while its tokens were being refreshed.');
    this.#tokens = next;
    // The old refresh token is dead: the store must hold the new one before anything else happens.
    await this.#save(next);
    return next;
  }

  /**
   * Forgets the sign-in here (memory and store) and revokes it at the issuer. Both are tried
   * even when the other fails; the outcome says what did not work.
   */
  async signOut(): Promise<SignOutOutcome> {
    if (this.#signingIn) {
      this.#signingIn.abort.abort();
      await this.#signingIn.promise.catch(() => {});
    }
    // A refresh in flight would store its rotated token after the store is cleared.
    if (this.#refreshing) await this.#refreshing.catch(() => {});
    const tokens = this.#tokens;

    const errors: Error[] = [];
    const clearError = await this.#forget();
    if (clearError) errors.push(clearError);

    let revoked = false;
    if (tokens) {
      try {
        revoked = (await this.#revoke(tokens)).revoked;
        if (!revoked) {
          errors.push(new Error('Signed out on this computer, but the issuer cannot revoke tokens: they stay valid until they expire.'));
        }
      } catch (err) {
        errors.push(
          new Error(`Signed out on this computer, but the issuer did not revoke the sign-in (${describe(err)}): it stays valid until it expires.`, {
            cause: err,
          }),
        );
      }
    }
    for (const err of errors) this.#report(err);
    return { revoked, cleared: clearError === undefined, errors };
  }
}
