/**
 * The cloud side's refusals, by stable code: what a client can branch on (the Ollama-shaped
 * answers carry it in the x-cloudtolocalllm-refusal header, the JSON API's credential refusals
 * as `reason`), and the one place each code gets its HTTP status. Messages are for people and
 * may change; codes may not (docs/cloud-server.md lists them).
 */
import { UPDATE_REQUIRED_STATUS } from '@cloudtolocalllm/bridge/connection/protocol';
import type { JwtFailureReason } from './auth/jwt-verifier.js';

/** Why a credential is refused: the verifier's reasons and the api-backend's and proxy's own. */
export type AuthReason = JwtFailureReason | 'invalid' | 'wrong-user' | 'too-many-failures' | 'duplicate-credentials';

export const ERROR_STATUS = {
  // Credentials: auth-<reason>.
  'auth-missing': 401,
  'auth-malformed': 401,
  'auth-algorithm': 401,
  'auth-signature': 401,
  'auth-unknown-key': 401,
  'auth-expired': 401,
  'auth-not-yet-valid': 401,
  'auth-issuer': 401,
  'auth-audience': 401,
  'auth-no-subject': 401,
  'auth-invalid': 401,
  'auth-wrong-user': 403,
  'auth-duplicate-credentials': 400,
  'auth-too-many-failures': 429,
  // The issuer's keys could not be fetched: the token was not found bad, it could not be checked.
  'auth-jwks-unavailable': 503,
  // Limits (api/limits.ts, the streaming proxy manager's).
  'rate-limit': 429,
  'concurrency-limit': 429,
  'bridge-limit': 429,
  'proxy-start-rate': 429,
  'proxy-limit': 503,
  // The user's streaming proxy, bridge and computer.
  'proxy-start-failed': 503,
  'proxy-unreachable': 502,
  'no-bridge': 503,
  'no-tunnel': 409,
  'no-such-tunnel': 409,
  'no-answer': 504,
  'bad-answer': 502,
  'bridge-lost': 502,
  'upstream-reset': 502,
  // The request itself.
  'bad-request': 400,
  'not-http': 400,
  'headers-too-large': 431,
  'headers-timeout': 408,
  'not-found': 404,
  'absolute-form': 400,
  'body-too-large': 413,
  'unsupported-media-type': 415,
  'body-stalled': 408,
  'not-ollama-api': 404,
  'method-not-allowed': 405,
  'websocket-required': 426,
  // The bridge speaks another version of the tunnel protocol (the wire contract's status).
  'update-required': UPDATE_REQUIRED_STATUS,
  // The api-backend itself.
  'server-starting': 503,
  'internal-error': 500,
  'metrics-off': 403,
  'metrics-unauthorized': 401,
} as const satisfies Record<`auth-${AuthReason}`, number> & Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export function authCode(reason: AuthReason): ErrorCode {
  return `auth-${reason}`;
}

/** A refusal with its stable code; its status comes from ERROR_STATUS, never from the thrower. */
export class ServerError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Seconds after which trying again can help (the Retry-After header). */
    readonly retryAfterSec?: number,
  ) {
    super(message);
    this.name = 'ServerError';
    this.status = ERROR_STATUS[code];
  }
}
