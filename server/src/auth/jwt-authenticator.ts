/**
 * The proxy's `Authenticator` backed by Auth0 access tokens, and the RFC 6750 §3 challenge that
 * goes with a refusal.
 *
 * A 'jwks-unavailable' failure is reported as status 401 because `AuthResult` has no other
 * failure status, but it is not the caller's fault: the API layer answers it with 503 (the
 * issuer's keys could not be fetched, so the token could not be checked), and so should any
 * caller that can.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { bearerToken } from '../proxy/auth.js';
import type { AuthResult, Authenticator, Purpose } from '../proxy/auth.js';
import type { JwtVerification, JwtVerifier } from './jwt-verifier.js';

export interface JwtAuthenticatorOptions {
  /** The one user this proxy serves: a valid token for another `sub` is refused with 403 'wrong-user'. */
  expectedSubject?: string;
}

export class JwtAuthenticator implements Authenticator {
  constructor(
    private readonly verifier: JwtVerifier,
    private readonly options: JwtAuthenticatorOptions = {},
  ) {}

  /** Bridge and Ollama callers present the same kind of token, so `purpose` does not change the checks. */
  async authenticate(headers: IncomingHttpHeaders, _purpose: Purpose): Promise<AuthResult> {
    const verification = await this.verifyRequest(headers);
    if (!verification.ok) {
      return { ok: false, status: 401, reason: verification.reason, message: verification.message };
    }
    const { expectedSubject } = this.options;
    if (expectedSubject !== undefined && verification.subject !== expectedSubject) {
      return { ok: false, status: 403, reason: 'wrong-user', message: 'the token is valid but belongs to another user than this proxy serves' };
    }
    return { ok: true, principal: { subject: verification.subject } };
  }

  /** The full verification of the request's Bearer token (RFC 6750 §2.1), for the API layer. */
  async verifyRequest(headers: IncomingHttpHeaders): Promise<JwtVerification> {
    const token = bearerToken(headers);
    if (token === undefined && hasBearerScheme(headers)) {
      return { ok: false, reason: 'malformed', message: 'the Authorization header uses the Bearer scheme but carries no valid token' };
    }
    return this.verifier.verify(token);
  }
}

function hasBearerScheme(headers: IncomingHttpHeaders): boolean {
  const value = headers['authorization'];
  return typeof value === 'string' && /^\s*bearer(\s|$)/i.test(value);
}

const REALM = 'CloudToLocalLLM';

/**
 * A WWW-Authenticate value for a refusal (RFC 6750 §3).
 *
 * - 'missing': no error code, just the realm (§3.1: a request without credentials gets none).
 * - 'jwks-unavailable': no error code either; the token was not found invalid, we could not check
 *   it (the response is a 503), and a client must not throw the token away.
 * - 'wrong-user' (403): `insufficient_scope`, the token is good but not for this resource.
 * - every other reason: `invalid_token`, with the message as `error_description`.
 */
export function wwwAuthenticate(v: { reason: string; message: string }): string {
  const challenge = `Bearer realm="${REALM}"`;
  if (v.reason === 'missing' || v.reason === 'jwks-unavailable') return challenge;
  const error = v.reason === 'wrong-user' ? 'insufficient_scope' : 'invalid_token';
  return `${challenge}, error="${error}", error_description="${errorDescription(v.message)}"`;
}

/**
 * RFC 6750 §3: error_description is limited to %x20-21 / %x23-5B / %x5D-7E, so double quotes
 * become single quotes and backslashes and anything outside printable ASCII are dropped.
 */
function errorDescription(message: string): string {
  return message.replace(/"/g, "'").replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '');
}
