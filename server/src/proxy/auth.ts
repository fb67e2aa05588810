/**
 * Who may use a streaming proxy. Each proxy belongs to exactly one user; both its bridge and
 * its Ollama callers must prove they are that user. How a credential is verified is behind this
 * interface: a static token for local runs and tests, Auth0 JWTs in the cloud server.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { AuthReason } from '../errors.js';

export type Purpose = 'bridge' | 'ollama';

export interface Principal {
  /** The user's id (the JWT `sub`). */
  subject: string;
}

export type AuthResult =
  | { ok: true; principal: Principal }
  | {
      ok: false;
      /** 401: no or bad credential; 403: a good credential for somebody else. */
      status: 401 | 403;
      /** Stable reason for metrics and the audit log, e.g. `missing`, `expired`, `wrong-user`; the refusal's code is auth-<reason>. */
      reason: AuthReason;
      /** Sentence for the caller. Never echoes the credential. */
      message: string;
    };

export interface Authenticator {
  authenticate(headers: IncomingHttpHeaders, purpose: Purpose): Promise<AuthResult>;
}

/** The Bearer token of an Authorization header (RFC 6750 §2.1), or undefined. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const value = headers['authorization'];
  if (typeof value !== 'string') return undefined;
  const match = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)$/i.exec(value.trim());
  return match?.[1];
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** One shared secret per proxy, compared in constant time. For local runs and tests. */
export class StaticTokenAuthenticator implements Authenticator {
  private readonly expected: Buffer;

  constructor(
    private readonly owner: string,
    token: string,
  ) {
    if (token.length < 16) throw new Error('the proxy token must be at least 16 characters');
    this.expected = digest(token);
  }

  async authenticate(headers: IncomingHttpHeaders): Promise<AuthResult> {
    const token = bearerToken(headers);
    // eslint-disable-next-line security/detect-possible-timing-attacks -- a presence check; the token itself is compared with timingSafeEqual below
    if (token === undefined) {
      return { ok: false, status: 401, reason: 'missing', message: 'this endpoint needs "Authorization: Bearer <token>"' };
    }
    if (!timingSafeEqual(digest(token), this.expected)) {
      return { ok: false, status: 401, reason: 'invalid', message: 'the bearer token is not valid for this proxy' };
    }
    return { ok: true, principal: { subject: this.owner } };
  }
}
