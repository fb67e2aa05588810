/**
 * Verifies Auth0 access tokens: JWTs (RFC 7519) signed with RS256 (RFC 7518 §3.3) by a key the
 * issuer publishes in its JSON Web Key Set (RFC 7517 §5). The checks follow the JWT access token
 * profile (RFC 9068 §4): exact `iss`, our API in `aud`, `exp`/`nbf` with a clock tolerance, and a
 * `sub` naming the user.
 *
 * `verify` never throws for a bad token: it answers with a stable `JwtFailureReason` a caller can
 * branch on, and a sentence that never echoes the token.
 */
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';

export interface JwtVerifierOptions {
  /** e.g. 'https://tenant.auth0.com/' (Auth0 issuers end with '/'); the `iss` claim must match it exactly. */
  issuer: string;
  /** The API identifier; the `aud` claim must be it or an array containing it. */
  audience: string;
  /** Default: issuer + '.well-known/jwks.json'. */
  jwksUri?: string;
  /** Allowed clock skew for `exp` and `nbf`, in seconds. Default 30. */
  clockToleranceSec?: number;
  /** JWKS fetch timeout. Default 5000. */
  fetchTimeoutMs?: number;
  /** Minimum time between JWKS refetches prompted by an unknown `kid`. Default 30000. */
  jwksCooldownMs?: number;
  /**
   * How long a fetched JWKS is trusted before it is fetched again, even for known kids. Bounds how
   * long a key the issuer has retired still verifies tokens. Default 600000 (10 minutes).
   */
  jwksMaxAgeMs?: number;
  /** Verified tokens remembered at once (see `verify`); the oldest goes first. Default 10000, 0 turns the cache off. */
  maxCachedTokens?: number;
}

export type JwtFailureReason =
  | 'missing'
  | 'malformed'
  | 'algorithm'
  | 'signature'
  | 'unknown-key'
  | 'expired'
  | 'not-yet-valid'
  | 'issuer'
  | 'audience'
  | 'no-subject'
  | 'jwks-unavailable';

export type JwtVerification =
  | { ok: true; subject: string; claims: JWTPayload; expiresAt?: number }
  | { ok: false; reason: JwtFailureReason; message: string };

/** The one JWS algorithm Auth0 signs access tokens with. Everything else is refused. */
const ALLOWED_ALGORITHMS = ['RS256'];
const DEFAULT_CLOCK_TOLERANCE_SEC = 30;
const DEFAULT_FETCH_TIMEOUT_MS = 5000;
const DEFAULT_JWKS_COOLDOWN_MS = 30_000;
const DEFAULT_JWKS_MAX_AGE_MS = 600_000;
const DEFAULT_MAX_CACHED_TOKENS = 10_000;

const MESSAGES: Record<JwtFailureReason, string> = {
  missing: 'this endpoint needs an access token: send "Authorization: Bearer <token>"',
  malformed: 'the bearer token is not a well-formed JWT',
  algorithm: 'the token is not signed with RS256, the only algorithm this server accepts',
  signature: "the token's signature does not match the issuer's signing key",
  'unknown-key': 'the token was signed with a key the issuer does not publish',
  expired: 'the token has expired; sign in again to get a new one',
  'not-yet-valid': "the token is not valid yet; check your computer's clock",
  issuer: 'the token was issued by an authority this server does not trust',
  audience: 'the token was issued for another API',
  'no-subject': 'the token does not name a user (no "sub" claim)',
  'jwks-unavailable': "the issuer's signing keys could not be fetched; try again shortly",
};

const fail = (reason: JwtFailureReason, message = MESSAGES[reason]): JwtVerification => ({ ok: false, reason, message });

/** Thrown by the key resolver when the JWKS could not be fetched or used; mapped to 'jwks-unavailable'. */
class JwksUnavailable extends Error {}

/** http is only acceptable for the issuer and JWKS on the loopback interface (local runs, tests). */
function isHttpsOrLoopback(url: URL): boolean {
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

/** Where an issuer publishes its keys, by Auth0's (and OpenID Connect Discovery's) convention. */
export function defaultJwksUri(issuer: string): string {
  return new URL('.well-known/jwks.json', issuer.endsWith('/') ? issuer : `${issuer}/`).href;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeJsonObject(segment: string): Record<string, unknown> | undefined {
  if (segment.length === 0 || !BASE64URL.test(segment) || segment.length % 4 === 1) return undefined;
  try {
    const value: unknown = JSON.parse(utf8.decode(Buffer.from(segment, 'base64url')));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The structural checks of RFC 7519 §7.2 steps 1-5, done before any key is fetched so garbage
 * never costs a JWKS request: three base64url parts, a JOSE header and a claims set that are JSON
 * objects, and an `alg` header.
 */
function checkCompactJwt(token: string): JwtVerification | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return fail('malformed', 'the bearer token is not a JWT (it must have three dot-separated parts)');
  const [header, payload, signature] = parts as [string, string, string];
  if (!BASE64URL.test(signature)) return fail('malformed', 'the bearer token is not a JWT (its signature is not base64url)');
  const joseHeader = decodeJsonObject(header);
  if (!joseHeader) return fail('malformed', 'the bearer token is not a JWT (its header is not base64url-encoded JSON)');
  if (typeof joseHeader['alg'] !== 'string') return fail('malformed', 'the bearer token is not a JWT (its header names no "alg")');
  if (!decodeJsonObject(payload)) return fail('malformed', 'the bearer token is not a JWT (its claims are not base64url-encoded JSON)');
  return undefined;
}

/** Maps jose's errors (by their stable `code`) to our reasons. */
function failureFromError(err: unknown): JwtVerification {
  if (err instanceof JwksUnavailable) return fail('jwks-unavailable');
  if (!(err instanceof errors.JOSEError)) {
    // Not a property of the token we were given; refuse it, but say we could not check it.
    return fail('signature', 'the token could not be verified');
  }
  switch (err.code) {
    case errors.JOSEAlgNotAllowed.code:
      return fail('algorithm');
    case errors.JWSSignatureVerificationFailed.code:
      return fail('signature');
    case errors.JWKSNoMatchingKey.code:
      return fail('unknown-key');
    case errors.JWKSMultipleMatchingKeys.code:
      return fail('unknown-key', 'the token names no signing key ("kid") and the issuer publishes several');
    case errors.JWKSTimeout.code:
    case errors.JWKSInvalid.code:
      return fail('jwks-unavailable');
    case errors.JWTExpired.code:
      return fail('expired');
    case errors.JWTClaimValidationFailed.code: {
      const { claim, reason } = err as errors.JWTClaimValidationFailed;
      if (claim === 'iss') return fail('issuer');
      if (claim === 'aud') return fail('audience');
      if (claim === 'sub') return fail('no-subject');
      if (claim === 'nbf' && reason === 'check_failed') return fail('not-yet-valid');
      if (claim === 'exp' && reason === 'missing') {
        return fail('malformed', 'the token has no expiry time ("exp"), which access tokens must carry');
      }
      return fail('malformed', `the token's "${claim}" claim is not valid`);
    }
    default:
      // ERR_JWS_INVALID, ERR_JWT_INVALID, ERR_JOSE_NOT_SUPPORTED (an unknown "crit" header), ...
      return fail('malformed');
  }
}

export class JwtVerifier {
  private readonly issuer: string;
  private readonly audience: string;
  private readonly clockTolerance: number;
  private readonly getKey: JWTVerifyGetKey;
  private readonly cacheMaxAge: number;
  private readonly maxCachedTokens: number;
  /** SHA-256 of a verified token → its verification and until when it stands (ms). */
  private readonly verified = new Map<string, { verification: JwtVerification; until: number }>();

  constructor(opts: JwtVerifierOptions) {
    if (!opts.issuer) throw new Error('JwtVerifier: issuer must be set');
    if (!opts.audience) throw new Error('JwtVerifier: audience must be set');
    const issuerUrl = parseUrl(opts.issuer, 'JwtVerifier: issuer');
    if (!isHttpsOrLoopback(issuerUrl)) throw new Error('JwtVerifier: issuer must be an https URL');
    const jwksUrl = parseUrl(opts.jwksUri ?? defaultJwksUri(opts.issuer), 'JwtVerifier: jwksUri');
    if (!isHttpsOrLoopback(jwksUrl)) throw new Error('JwtVerifier: jwksUri must be an https URL');
    const clockTolerance = opts.clockToleranceSec ?? DEFAULT_CLOCK_TOLERANCE_SEC;
    const timeoutDuration = opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    const cooldownDuration = opts.jwksCooldownMs ?? DEFAULT_JWKS_COOLDOWN_MS;
    const cacheMaxAge = opts.jwksMaxAgeMs ?? DEFAULT_JWKS_MAX_AGE_MS;
    if (!Number.isFinite(clockTolerance) || clockTolerance < 0) {
      throw new Error('JwtVerifier: clockToleranceSec must be a non-negative number');
    }
    if (!Number.isInteger(timeoutDuration) || timeoutDuration <= 0) {
      throw new Error('JwtVerifier: fetchTimeoutMs must be a positive integer');
    }
    if (!Number.isFinite(cooldownDuration) || cooldownDuration < 0) {
      throw new Error('JwtVerifier: jwksCooldownMs must be a non-negative number');
    }
    if (!Number.isFinite(cacheMaxAge) || cacheMaxAge < 0) {
      throw new Error('JwtVerifier: jwksMaxAgeMs must be a non-negative number');
    }
    this.issuer = opts.issuer;
    this.audience = opts.audience;
    this.clockTolerance = clockTolerance;
    this.cacheMaxAge = cacheMaxAge;
    this.maxCachedTokens = opts.maxCachedTokens ?? DEFAULT_MAX_CACHED_TOKENS;
    if (!Number.isInteger(this.maxCachedTokens) || this.maxCachedTokens < 0) {
      throw new Error('JwtVerifier: maxCachedTokens must be a non-negative integer');
    }

    // jose caches the key set for cacheMaxAge, refetches it for an unknown `kid` at most once per
    // cooldown, and shares one in-flight fetch among concurrent requests.
    const jwks = createRemoteJWKSet(jwksUrl, { timeoutDuration, cooldownDuration, cacheMaxAge });
    this.getKey = async (header, token) => {
      let key: Awaited<ReturnType<typeof jwks>>;
      try {
        key = await jwks(header, token);
      } catch (err) {
        // "No such key" is the token's problem (401); anything else is ours or the issuer's (503).
        if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
        throw new JwksUnavailable('JWKS unavailable', { cause: err });
      }
      // RFC 7518 §3.3: RS256 keys must be at least 2048 bits; a shorter published key is the issuer's fault.
      const { modulusLength } = key.algorithm as { modulusLength?: number };
      if (modulusLength !== undefined && modulusLength < 2048) throw new JwksUnavailable('issuer key shorter than 2048 bits');
      return key;
    };
  }

  /**
   * A token that verified stays verified until it expires (with the clock tolerance, as the full
   * check allows), but never longer than the key set it was checked with is trusted
   * (jwksMaxAgeMs): a client sends the same token on every request, and the signature check
   * (RSA, JSON, claims) was most of the api-backend's CPU per small request. Only successes are
   * remembered, keyed by the token's SHA-256, so the cache holds no credential.
   */
  async verify(token: string | undefined): Promise<JwtVerification> {
    if (token === undefined || token === '') return fail('missing');
    const key = this.maxCachedTokens > 0 ? createHash('sha256').update(token).digest('base64url') : '';
    const cached = key ? this.verified.get(key) : undefined;
    if (cached) {
      if (Date.now() < cached.until) return cached.verification;
      this.verified.delete(key);
    }
    const verification = await this.verifyFully(token);
    if (key && verification.ok && verification.expiresAt !== undefined) {
      const until = Math.min((verification.expiresAt + this.clockTolerance) * 1000, Date.now() + this.cacheMaxAge);
      if (this.verified.size >= this.maxCachedTokens) this.verified.delete(this.verified.keys().next().value as string);
      this.verified.set(key, { verification, until });
    }
    return verification;
  }

  private async verifyFully(token: string): Promise<JwtVerification> {
    const structural = checkCompactJwt(token);
    if (structural) return structural;
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, this.getKey, {
        algorithms: ALLOWED_ALGORITHMS,
        issuer: this.issuer,
        audience: this.audience,
        clockTolerance: this.clockTolerance,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      return failureFromError(err);
    }
    // jose checks `iat` only against a maximum age; a token issued in the future (beyond the
    // clock tolerance) comes from a wrong clock or a forger who wants it to live longer.
    if (typeof claims.iat === 'number' && claims.iat > Date.now() / 1000 + this.clockTolerance) {
      return fail('not-yet-valid', "the token was issued in the future (its \"iat\" is ahead of this server's clock); check the issuer's clock");
    }
    const subject = claims.sub;
    if (typeof subject !== 'string' || subject.trim() === '') return fail('no-subject');
    return typeof claims.exp === 'number' ? { ok: true, subject, claims, expiresAt: claims.exp } : { ok: true, subject, claims };
  }
}

function parseUrl(value: string, what: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new Error(`${what} is not a URL`);
  }
}

/**
 * Auth0 settings from the environment, validated once at start. Undefined when AUTH0_DOMAIN is
 * unset: the server then trusts its embedded issuer instead.
 *
 * - AUTH0_DOMAIN: 'tenant.auth0.com' or 'https://tenant.auth0.com'; the issuer becomes 'https://tenant.auth0.com/'.
 * - AUTH0_AUDIENCE: the API identifier (required with AUTH0_DOMAIN).
 * - AUTH0_ISSUER: overrides the issuer, used verbatim (the `iss` claim must equal it exactly).
 * - AUTH0_JWKS_URI: overrides where the keys are fetched; default https://<AUTH0_DOMAIN>/.well-known/jwks.json.
 */
export function jwtOptionsFromEnv(env: NodeJS.ProcessEnv): JwtVerifierOptions | undefined {
  const domain = env['AUTH0_DOMAIN']?.trim();
  if (!domain) return undefined;

  const tenant = authorityUrl(domain, 'AUTH0_DOMAIN');
  const audience = env['AUTH0_AUDIENCE']?.trim();
  if (!audience) {
    throw new Error('AUTH0_AUDIENCE must be set to the API identifier when AUTH0_DOMAIN is set');
  }

  let issuer = tenant;
  const issuerOverride = env['AUTH0_ISSUER']?.trim();
  if (issuerOverride) {
    const url = checkedUrl(issuerOverride, 'AUTH0_ISSUER');
    // RFC 8414 §2: an issuer identifier has no query or fragment.
    if (url.search || url.hash || issuerOverride.includes('?') || issuerOverride.includes('#')) {
      throw new Error('AUTH0_ISSUER must not have a query or fragment');
    }
    issuer = issuerOverride;
  }

  const jwksOverride = env['AUTH0_JWKS_URI']?.trim();
  const jwksUri = jwksOverride ? checkedUrl(jwksOverride, 'AUTH0_JWKS_URI').href : defaultJwksUri(tenant);
  return { issuer, audience, jwksUri };
}

function checkedUrl(value: string, variable: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`${variable} is not a URL: expected something like https://tenant.auth0.com/`);
  }
  if (!isHttpsOrLoopback(url)) {
    throw new Error(`${variable} must be an https URL (http is only allowed for 127.0.0.1 and localhost)`);
  }
  if (url.username || url.password) throw new Error(`${variable} must not contain credentials`);
  return url;
}

/** 'tenant.auth0.com', 'https://tenant.auth0.com' or 'https://tenant.auth0.com/' → 'https://tenant.auth0.com/'. */
function authorityUrl(domain: string, variable: string): string {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(domain);
  const url = checkedUrl(hasScheme ? domain : `https://${domain}`, variable);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || /[?#]/.test(domain)) {
    throw new Error(`${variable} must be a host name like tenant.auth0.com, without a path`);
  }
  return `${url.origin}/`;
}
