/**
 * The tokens a sign-in yields, in the shape the desktop app stores and passes around. It names
 * its issuer and client so a refresh or sign-out needs nothing else.
 */
export interface TokenSet {
  /** Issuer identifier the tokens come from. */
  issuer: string;
  /** OAuth client the tokens were issued to. */
  clientId: string;
  /** Bearer token for the API (a JWT for Auth0 and the embedded issuer). */
  accessToken: string;
  /** Present when the issuer issued one; rotated issuers replace it on every refresh. */
  refreshToken?: string;
  idToken?: string;
  /** When the access token expires, in ms since the epoch. */
  expiresAt: number;
  /** The ID token's `sub`: who signed in. */
  subject?: string;
  scope?: string;
}

/** Used when the issuer says nothing about expiry: short, so the app refreshes early rather than late. */
const UNKNOWN_LIFETIME_SEC = 5 * 60;

/** The `exp` of a JWT access token, read only to schedule a refresh (the API verifies it). */
function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export interface TokenEndpointResult {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  scope?: string;
  expiresIn(): number | undefined;
  claims(): { sub: string } | undefined;
}

/**
 * Builds a TokenSet from a token endpoint response. `previous` is the set being refreshed: what
 * the response leaves out (refresh token of a non-rotating issuer, ID token, subject) carries over.
 */
export function tokenSetFromResponse(
  issuer: string,
  clientId: string,
  response: TokenEndpointResult,
  now: number,
  previous?: TokenSet,
): TokenSet {
  const expiresIn = response.expiresIn();
  const expiresAt =
    expiresIn !== undefined ? now + expiresIn * 1000 : jwtExpiry(response.access_token) ?? now + UNKNOWN_LIFETIME_SEC * 1000;
  const tokens: TokenSet = { issuer, clientId, accessToken: response.access_token, expiresAt };
  const refreshToken = response.refresh_token ?? previous?.refreshToken;
  if (refreshToken) tokens.refreshToken = refreshToken;
  const idToken = response.id_token ?? previous?.idToken;
  if (idToken) tokens.idToken = idToken;
  const subject = response.claims()?.sub ?? previous?.subject;
  if (subject) tokens.subject = subject;
  const scope = response.scope ?? previous?.scope;
  if (scope) tokens.scope = scope;
  return tokens;
}
