/**
 * The cloud side's refusals: the codes and statuses of the HTTP API contract
 * (@cloudtolocalllm/api-contract/errors, the one place a code gets its status), plus the tunnel's
 * own 'update-required' (the wire contract's status), and the error that carries one.
 */
import { API_ERROR_STATUS, type ApiErrorCode, type AuthReason } from '@cloudtolocalllm/api-contract';
import { UPDATE_REQUIRED_STATUS } from '@cloudtolocalllm/bridge/connection/protocol';

export type { AuthReason };

export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = {
  ...API_ERROR_STATUS,
  // The bridge speaks another version of the tunnel protocol.
  'update-required': UPDATE_REQUIRED_STATUS,
};

export type ErrorCode = ApiErrorCode | 'update-required';

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
