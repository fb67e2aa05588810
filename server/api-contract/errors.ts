/**
 * The refusals of the api-backend and the streaming proxy behind it, by stable code, and the
 * HTTP status of each, written once. A client branches on the code: Ollama-shaped answers carry
 * it in the x-cloudtolocalllm-refusal header (the tunnel's wire contract names the header), the
 * JSON API's credential refusals as `reason` (the code is auth-<reason>). Messages are for
 * people and may change; codes may not.
 */

/** Why a credential is refused: the token verifier's reasons and the api-backend's own. */
export const AUTH_REASONS = [
  'missing',
  'malformed',
  'algorithm',
  'signature',
  'unknown-key',
  'expired',
  'not-yet-valid',
  'issuer',
  'audience',
  'no-subject',
  'jwks-unavailable',
  'invalid',
  'wrong-user',
  'too-many-failures',
  'duplicate-credentials',
  // A client key's form, checked by the api-backend (bridge/connection/client-key.ts, issue 9).
  'key-malformed',
  'key-truncated',
  'key-checksum',
] as const;
export type AuthReason = (typeof AUTH_REASONS)[number];

export const API_ERROR_STATUS = {
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
  'auth-key-malformed': 401,
  'auth-key-truncated': 401,
  'auth-key-checksum': 401,
  // A client key the streaming proxy does not accept (server/src/proxy/key-set.ts): revoked,
  // another user's, a secret that does not match, or expired.
  'key-invalid': 401,
  'key-expired': 401,
  // A key limited to some computers (npm run keys -- create --machines), pinned to another one.
  'key-machine': 403,
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
  // Several computers on one endpoint (issue 10; server/src/proxy/dispatch.ts).
  'machine-limit': 429,
  'machine-name-invalid': 400,
  'unknown-machine': 404,
  'machine-required': 400,
  'model-not-found': 404,
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
  // The api-backend itself.
  'server-starting': 503,
  'internal-error': 500,
  'metrics-off': 403,
  'metrics-unauthorized': 401,
  // Several api-backends (docs/scaling.md): identity headers only a peer may send; the owner gone.
  'peer-only': 403,
  'peer-unreachable': 502,
  'owner-moving': 503,
} as const satisfies Record<`auth-${AuthReason}`, number> & Record<string, number>;

export type ApiErrorCode = keyof typeof API_ERROR_STATUS;
