/**
 * The one error type of the desktop sign-in code. `code` is stable: callers branch on it (show
 * "sign in again" for 'refresh-failed', retry later for 'issuer-unreachable', ...), never on the
 * message, which is for people.
 */
export type AuthErrorCode =
  /** Discovery, token or revocation endpoint could not be reached (network, timeout, 5xx). Retry later. */
  | 'issuer-unreachable'
  /** The issuer URL is http:// on a host other than a loopback address. */
  | 'insecure-issuer'
  /** The issuer answered, but not with usable metadata or responses. */
  | 'invalid-issuer'
  /** No local port could be opened for the loopback redirect. */
  | 'loopback-unavailable'
  /** The `openBrowser` callback failed. */
  | 'browser-failed'
  /** No answer reached the loopback redirect in time. */
  | 'timeout'
  /** The caller aborted the sign-in. */
  | 'cancelled'
  /** The redirect carried a `state` other than the one sent: a stale tab or a forged request. */
  | 'state-mismatch'
  /** The person (or the issuer's policy) declined the sign-in. */
  | 'access-denied'
  /** The authorization endpoint returned another error, or a malformed response. */
  | 'authorization-error'
  /** The issuer refused to exchange the authorization code, or its response failed validation. */
  | 'token-exchange-failed'
  /** The issuer refused the refresh token (expired, revoked, already used): sign in again. */
  | 'refresh-failed'
  /** The token set has no refresh token to use. */
  | 'no-refresh-token'
  /** The issuer refused to revoke a token. */
  | 'revocation-failed'
  /** Headless sign-in: the issuer's sign-in form refused the user name. */
  | 'login-rejected'
  /** Headless sign-in: the issuer's pages are not the embedded issuer's (e.g. Auth0). */
  | 'headless-unsupported';

export class AuthError extends Error {
  override readonly name = 'AuthError';
  readonly code: AuthErrorCode;
  /** The OAuth `error` value from the issuer, when it sent one (e.g. 'invalid_grant'). */
  readonly oauthError: string | undefined;

  constructor(code: AuthErrorCode, message: string, options: { cause?: unknown; oauthError?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.oauthError = options.oauthError;
  }
}

export function isAuthError(value: unknown, code?: AuthErrorCode): value is AuthError {
  return value instanceof AuthError && (code === undefined || value.code === code);
}
