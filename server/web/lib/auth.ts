/**
 * Sign-in in the browser: OAuth 2.0 authorization code flow with PKCE (S256), state and nonce,
 * as a public client (oauth4webapi does the checks: issuer metadata, RFC 9207 `iss`, state, the
 * ID token's claims). The redirect comes back to this page (<origin>/app/).
 *
 * Where tokens live: in memory, and in this tab's sessionStorage so a reload keeps the sign-in.
 * sessionStorage is per tab and is cleared when the tab closes; nothing goes to localStorage or
 * cookies. Refresh tokens (rotated by the issuer) renew the access token before it expires.
 */
import type { ClientConfig } from '@cloudtolocalllm/api-contract';
import * as oauth from 'oauth4webapi';

export type { ClientConfig } from '@cloudtolocalllm/api-contract';

export interface User {
  sub: string;
  name: string;
}

interface StoredSession {
  accessToken: string;
  refreshToken?: string;
  /** ms since the epoch. */
  expiresAt: number;
  user: User;
  issuer: string;
  clientId: string;
}

interface PendingSignIn {
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
  issuer: string;
  clientId: string;
  startedAt: number;
}

const SESSION_KEY = 'ctll.session';
const PENDING_KEY = 'ctll.pending-sign-in';
/** Set by "Sign out" so the next sign-in asks who you are instead of reusing the issuer's session. */
const SIGNED_OUT_KEY = 'ctll.signed-out';
const SCOPE = 'openid profile offline_access';
/** Renew this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;
const PENDING_MAX_AGE_MS = 15 * 60_000;

/** The person must sign in (again): no session, a refused refresh, a refused token. */
export class SignInRequired extends Error {
  override name = 'SignInRequired';
}

function readJson<T>(storage: Storage, key: string): T | undefined {
  try {
    const raw = storage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : undefined;
  } catch {
    return undefined;
  }
}

function describe(err: unknown): string {
  if (err instanceof oauth.ResponseBodyError || err instanceof oauth.AuthorizationResponseError) {
    return err.error_description ? `${err.error}: ${err.error_description}` : err.error;
  }
  return err instanceof Error ? err.message : String(err);
}

export class WebAuth {
  private session: StoredSession | undefined;
  private refreshing: Promise<string> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private metadata: oauth.AuthorizationServer | undefined;
  private readonly client: oauth.Client;
  private readonly options: { [oauth.allowInsecureRequests]?: boolean };
  /** Called when the session ends by itself (a refused refresh). */
  onExpired: (message: string) => void = () => {};

  constructor(readonly config: ClientConfig & { webClientId: string }) {
    this.client = { client_id: config.webClientId };
    // The embedded issuer of a local install speaks plain http on 127.0.0.1; a real one is https.
    this.options = new URL(config.issuer).protocol === 'http:' ? { [oauth.allowInsecureRequests]: true } : {};
    const stored = readJson<StoredSession>(sessionStorage, SESSION_KEY);
    if (stored && stored.issuer === config.issuer && stored.clientId === config.webClientId && typeof stored.accessToken === 'string') {
      this.session = stored;
    }
  }

  get user(): User | undefined {
    return this.session?.user;
  }

  get signedIn(): boolean {
    return this.session !== undefined;
  }

  /** Whether this URL is the issuer sending the browser back (a code or an error, with state). */
  static isCallback(url: URL): boolean {
    return url.searchParams.has('state') && (url.searchParams.has('code') || url.searchParams.has('error'));
  }

  private async discover(): Promise<oauth.AuthorizationServer> {
    if (this.metadata) return this.metadata;
    const issuer = new URL(this.config.issuer);
    const response = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...this.options });
    this.metadata = await oauth.processDiscoveryResponse(issuer, response);
    return this.metadata;
  }

  /** Sends the browser to the issuer's sign-in page; comes back to `redirectUri`. */
  async beginSignIn(redirectUri: string): Promise<never> {
    const as = await this.discover();
    if (!as.authorization_endpoint) throw new Error('the issuer publishes no authorization endpoint');
    const pending: PendingSignIn = {
      state: oauth.generateRandomState(),
      nonce: oauth.generateRandomNonce(),
      codeVerifier: oauth.generateRandomCodeVerifier(),
      redirectUri,
      issuer: this.config.issuer,
      clientId: this.config.webClientId,
      startedAt: Date.now(),
    };
    const url = new URL(as.authorization_endpoint);
    const params: Record<string, string> = {
      client_id: this.config.webClientId,
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: SCOPE,
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await oauth.calculatePKCECodeChallenge(pending.codeVerifier),
      code_challenge_method: 'S256',
      // RFC 8707 (the embedded issuer) and Auth0's own name for the same thing.
      resource: this.config.audience,
      audience: this.config.audience,
    };
    if (sessionStorage.getItem(SIGNED_OUT_KEY)) params['prompt'] = 'login';
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
    window.location.assign(url.href);
    return new Promise<never>(() => {});
  }

  /** Finishes a sign-in from the issuer's redirect. Throws an Error whose message explains the problem. */
  async completeSignIn(callback: URL): Promise<User> {
    const pending = readJson<PendingSignIn>(sessionStorage, PENDING_KEY);
    sessionStorage.removeItem(PENDING_KEY);
    if (!pending || pending.issuer !== this.config.issuer || Date.now() - pending.startedAt > PENDING_MAX_AGE_MS) {
      throw new Error('this sign-in was not started from this tab, or it is too old. Sign in again.');
    }
    const as = await this.discover();
    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(as, this.client, callback, pending.state);
    } catch (err) {
      if (err instanceof oauth.AuthorizationResponseError && err.error === 'access_denied') {
        throw new Error('sign-in was cancelled.');
      }
      throw new Error(`the issuer refused the sign-in (${describe(err)}).`);
    }
    let result: oauth.TokenEndpointResponse;
    try {
      const response = await oauth.authorizationCodeGrantRequest(as, this.client, oauth.None(), params, pending.redirectUri, pending.codeVerifier, this.options);
      result = await oauth.processAuthorizationCodeResponse(as, this.client, response, { expectedNonce: pending.nonce, requireIdToken: true });
    } catch (err) {
      throw new Error(`the sign-in could not be completed (${describe(err)}).`);
    }
    const claims = oauth.getValidatedIdTokenClaims(result);
    const sub = String(claims?.sub ?? '');
    const name = [claims?.['name'], claims?.['preferred_username'], claims?.['email'], sub].find((v) => typeof v === 'string' && v !== '') as string;
    this.store(result, { sub, name });
    sessionStorage.removeItem(SIGNED_OUT_KEY);
    return { sub, name };
  }

  /** A valid access token: renews it first when it is (nearly) expired. */
  async accessToken(): Promise<string> {
    const session = this.session;
    if (!session) throw new SignInRequired('you are not signed in.');
    if (Date.now() < session.expiresAt - REFRESH_MARGIN_MS / 2) return session.accessToken;
    // Without a refresh token the token is used until it runs out; the API's 401 then ends it.
    if (!session.refreshToken && Date.now() < session.expiresAt) return session.accessToken;
    return this.refresh();
  }

  /** Renews the access token with the refresh token (one renewal at a time). */
  refresh(): Promise<string> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<string> {
    const session = this.session;
    if (!session) throw new SignInRequired('you are not signed in.');
    if (!session.refreshToken) {
      this.forget();
      throw new SignInRequired('your sign-in has expired.');
    }
    const as = await this.discover();
    let result: oauth.TokenEndpointResponse;
    try {
      const response = await oauth.refreshTokenGrantRequest(as, this.client, oauth.None(), session.refreshToken, this.options);
      result = await oauth.processRefreshTokenResponse(as, this.client, response);
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError) {
        // invalid_grant and friends: the refresh token is dead; only a new sign-in helps.
        this.forget();
        throw new SignInRequired(`your sign-in has expired (${describe(err)}).`);
      }
      throw err; // the issuer is unreachable: keep the session, try again later
    }
    const claims = oauth.getValidatedIdTokenClaims(result);
    if (claims?.sub !== undefined && claims.sub !== session.user.sub) {
      this.forget();
      throw new SignInRequired('the issuer answered for another user.');
    }
    this.store(result, session.user, session.refreshToken);
    return result.access_token;
  }

  /** Revokes the refresh token (best effort) and forgets everything this tab holds. */
  async signOut(): Promise<void> {
    const session = this.session;
    this.forget();
    sessionStorage.setItem(SIGNED_OUT_KEY, '1');
    if (!session?.refreshToken) return;
    try {
      const as = await this.discover();
      if (!as.revocation_endpoint) return;
      const response = await oauth.revocationRequest(as, this.client, oauth.None(), session.refreshToken, {
        ...this.options,
        additionalParameters: { token_type_hint: 'refresh_token' },
        signal: AbortSignal.timeout(5_000),
      });
      await oauth.processRevocationResponse(response);
    } catch {
      // The tokens are forgotten here either way; a refresh token left alive expires on its own.
    }
  }

  /** Forgets the session without telling the issuer (a refused token). */
  forget(): void {
    this.session = undefined;
    clearTimeout(this.refreshTimer);
    sessionStorage.removeItem(SESSION_KEY);
  }

  /** Schedules the renewal of a restored session. */
  resume(): void {
    if (this.session) this.schedule();
  }

  private store(result: oauth.TokenEndpointResponse, user: User, previousRefreshToken?: string): void {
    const expiresIn = typeof result.expires_in === 'number' && result.expires_in > 0 ? result.expires_in : 300;
    const refreshToken = result.refresh_token ?? previousRefreshToken;
    this.session = {
      accessToken: result.access_token,
      ...(refreshToken ? { refreshToken } : {}),
      expiresAt: Date.now() + expiresIn * 1000,
      user,
      issuer: this.config.issuer,
      clientId: this.config.webClientId,
    };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
    this.schedule();
  }

  private schedule(): void {
    clearTimeout(this.refreshTimer);
    const session = this.session;
    if (!session?.refreshToken) return;
    const delay = Math.max(5_000, session.expiresAt - Date.now() - REFRESH_MARGIN_MS);
    this.refreshTimer = setTimeout(() => {
      this.refresh().catch((err: unknown) => {
        if (err instanceof SignInRequired) this.onExpired(err.message);
        else this.schedule(); // unreachable issuer: try again shortly
      });
    }, Math.min(delay, 2 ** 31 - 1));
  }
}
