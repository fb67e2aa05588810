/**
 * OAuth 2.0 for native apps (RFC 8252) with openid-client: authorization code flow with PKCE
 * (RFC 7636, S256) through the system browser and a loopback redirect, token refresh (with
 * refresh token rotation), and sign-out by token revocation (RFC 7009).
 *
 * Works with Auth0 (which wants an `audience` parameter) and with RFC 8707 issuers such as the
 * embedded one (which take `resource`): the authorization request carries both.
 * Electron-free: the caller decides how to open the browser.
 */
import * as client from 'openid-client';

import { AuthError, type AuthErrorCode } from './auth-error.js';
import { DEFAULT_REDIRECT_TIMEOUT_MS, startLoopbackRedirect } from './loopback-redirect.js';
import { tokenSetFromResponse, type TokenSet } from './token-set.js';

export type { TokenSet } from './token-set.js';

/** openid for the ID token (who signed in), offline_access for a refresh token at Auth0. */
export const DEFAULT_SCOPE = 'openid profile offline_access';
export const DEFAULT_SIGN_IN_TIMEOUT_MS = DEFAULT_REDIRECT_TIMEOUT_MS;
/** Per HTTP request to the issuer (discovery, token, revocation). */
const ISSUER_REQUEST_TIMEOUT_SEC = 15;

const LOOPBACK_HOSTNAMES = new Set(['127.0.0.1', 'localhost', '[::1]']);

export interface SignInOptions {
  /** Issuer identifier, e.g. https://tenant.auth0.com/ or http://127.0.0.1:PORT (embedded issuer). */
  issuer: string;
  clientId: string;
  /** API identifier: sent as `audience` (Auth0) and, when an absolute URI, as `resource` (RFC 8707). */
  audience: string;
  /** Default 'openid profile offline_access'. */
  scope?: string;
  /** Shows the authorization URL to the person, normally in the system browser. */
  openBrowser: (url: string) => void | Promise<void>;
  /** How long to wait for the browser to come back. Default 5 minutes. */
  timeoutMs?: number;
  /** 'login' asks for the user again even when the issuer remembers a browser session. */
  prompt?: string;
  signal?: AbortSignal;
}

export interface SignOutResult {
  /** false when the issuer has no revocation endpoint: the tokens stay valid until they expire. */
  revoked: boolean;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

/** Network failures, timeouts and 5xx answers: worth retrying later, unlike a refusal. */
function isUnreachable(err: unknown): boolean {
  if (err instanceof TypeError && err.message === 'fetch failed') return true;
  if (err instanceof client.ClientError) {
    if (err.code === 'OAUTH_TIMEOUT' || err.code === 'OAUTH_ABORT') return true;
    if (err.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' && err.cause instanceof Response && err.cause.status >= 500) {
      return true;
    }
  }
  return err instanceof client.ResponseBodyError && err.status >= 500;
}

function toAuthError(err: unknown, code: AuthErrorCode, context: string): AuthError {
  if (err instanceof AuthError) return err;
  if (isUnreachable(err)) {
    return new AuthError('issuer-unreachable', `${context}: the issuer cannot be reached (${describe(err)}).`, { cause: err });
  }
  if (err instanceof client.ResponseBodyError) {
    const detail = err.error_description ? `${err.error} (${err.error_description})` : err.error;
    return new AuthError(code, `${context}: ${detail}.`, { cause: err, oauthError: err.error });
  }
  return new AuthError(code, `${context}: ${describe(err)}.`, { cause: err });
}

/** https everywhere; plain http only for an issuer on this machine (the embedded one). */
function issuerUrl(issuer: string): URL {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new AuthError('invalid-issuer', `The issuer ${JSON.stringify(issuer)} is not a URL.`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && LOOPBACK_HOSTNAMES.has(url.hostname)) return url;
  throw new AuthError('insecure-issuer', `The issuer ${issuer} must use https (plain http is only allowed on 127.0.0.1).`);
}

/** Authorization server metadata discovery (OpenID Connect Discovery 1.0) for a public client. */
export async function discoverIssuer(issuer: string, clientId: string): Promise<client.Configuration> {
  const url = issuerUrl(issuer);
  try {
    return await client.discovery(url, clientId, undefined, client.None(), {
      execute: url.protocol === 'http:' ? [client.allowInsecureRequests] : [],
      timeout: ISSUER_REQUEST_TIMEOUT_SEC,
    });
  } catch (err) {
    throw toAuthError(err, 'invalid-issuer', `Discovery of ${issuer} failed`);
  }
}

function isAbsoluteUri(value: string): boolean {
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

interface AuthorizationRequest {
  redirectUri: string;
  scope: string;
  audience: string;
  codeChallenge: string;
  state: string;
  nonce: string | undefined;
  prompt: string | undefined;
}

function authorizationParameters(request: AuthorizationRequest): Record<string, string> {
  const params: Record<string, string> = {
    response_type: 'code',
    redirect_uri: request.redirectUri,
    scope: request.scope,
    code_challenge: request.codeChallenge,
    code_challenge_method: 'S256',
    state: request.state,
    audience: request.audience,
  };
  // RFC 8707 requires an absolute URI; Auth0 audiences need not be one.
  if (isAbsoluteUri(request.audience)) params['resource'] = request.audience;
  if (request.nonce !== undefined) params['nonce'] = request.nonce;
  if (request.prompt !== undefined) params['prompt'] = request.prompt;
  return params;
}

/** Settles only if opening the browser fails; success leaves the wait to the loopback redirect. */
function browserFailure(openBrowser: SignInOptions['openBrowser'], url: string): Promise<never> {
  return Promise.resolve()
    .then(() => openBrowser(url))
    .then(
      () => new Promise<never>(() => {}),
      (err: unknown) => {
        throw err instanceof AuthError
          ? err
          : new AuthError('browser-failed', `Could not open the browser: ${describe(err)}.`, { cause: err });
      },
    );
}

/**
 * Signs in through the browser: discovery, PKCE + state + nonce, loopback redirect, code
 * exchange. Rejects with an AuthError.
 */
export async function signIn(options: SignInOptions): Promise<TokenSet> {
  const config = await discoverIssuer(options.issuer, options.clientId);
  const scope = options.scope ?? DEFAULT_SCOPE;
  const wantsIdToken = scope.split(' ').includes('openid');

  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = wantsIdToken ? client.randomNonce() : undefined;

  const redirect = await startLoopbackRedirect({
    expectedState: state,
    timeoutMs: options.timeoutMs ?? DEFAULT_SIGN_IN_TIMEOUT_MS,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  try {
    const authorizationUrl = client.buildAuthorizationUrl(
      config,
      authorizationParameters({
        redirectUri: redirect.redirectUri,
        scope,
        audience: options.audience,
        codeChallenge,
        state,
        nonce,
        prompt: options.prompt,
      }),
    );
    const callbackUrl = await Promise.race([redirect.callback, browserFailure(options.openBrowser, authorizationUrl.href)]);

    let response: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      response = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: codeVerifier,
        expectedState: state,
        ...(nonce !== undefined ? { expectedNonce: nonce } : {}),
      });
    } catch (err) {
      throw toAuthError(err, 'token-exchange-failed', 'The issuer did not exchange the authorization code');
    }
    return tokenSetFromResponse(config.serverMetadata().issuer, options.clientId, response, Date.now());
  } finally {
    await redirect.close();
  }
}

/**
 * Uses the refresh token for a new access token. With rotation (the embedded issuer, Auth0 with
 * rotation on) the result holds a new refresh token and the old one is dead: store the result.
 * 'refresh-failed' means the person must sign in again; 'issuer-unreachable' means try later.
 */
export async function refresh(tokens: TokenSet): Promise<TokenSet> {
  if (!tokens.refreshToken) {
    throw new AuthError('no-refresh-token', 'These tokens have no refresh token; sign in again.');
  }
  const config = await discoverIssuer(tokens.issuer, tokens.clientId);
  let response: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
  try {
    response = await client.refreshTokenGrant(config, tokens.refreshToken);
  } catch (err) {
    throw toAuthError(err, 'refresh-failed', 'The issuer refused the refresh token');
  }
  const subject = response.claims()?.sub;
  if (subject !== undefined && tokens.subject !== undefined && subject !== tokens.subject) {
    throw new AuthError('refresh-failed', 'The refreshed ID token names another user; sign in again.');
  }
  return tokenSetFromResponse(tokens.issuer, tokens.clientId, response, Date.now(), tokens);
}

/**
 * Revokes the refresh token (which ends the grant at the embedded issuer and Auth0) and then the
 * access token, at the issuer's revocation endpoint. The caller forgets the tokens either way.
 */
export async function signOut(tokens: TokenSet): Promise<SignOutResult> {
  const config = await discoverIssuer(tokens.issuer, tokens.clientId);
  if (!config.serverMetadata().revocation_endpoint) return { revoked: false };

  if (tokens.refreshToken) {
    try {
      await client.tokenRevocation(config, tokens.refreshToken, { token_type_hint: 'refresh_token' });
    } catch (err) {
      throw toAuthError(err, 'revocation-failed', 'The issuer did not revoke the refresh token');
    }
  }
  try {
    await client.tokenRevocation(config, tokens.accessToken, { token_type_hint: 'access_token' });
  } catch (err) {
    // Some issuers (Auth0) only revoke refresh tokens; a JWT access token then just runs out.
    if (!(err instanceof client.ResponseBodyError && err.error === 'unsupported_token_type')) {
      throw toAuthError(err, 'revocation-failed', 'The issuer did not revoke the access token');
    }
  }
  return { revoked: true };
}
