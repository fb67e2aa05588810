/**
 * Scrubs secrets from log lines before they reach the log file: bearer tokens, JWTs, refresh
 * tokens, OAuth codes and client keys. Logs are meant to be shared in bug reports; tokens never are.
 */
const PATTERNS: Array<[RegExp, string]> = [
  // A client key (bridge/connection/client-key.ts), even cut short or without "Bearer" before it.
  [/\bctll_[A-Za-z0-9_-]{8,}/g, 'ctll_[redacted]'],
  [/\bBearer\s+[A-Za-z0-9\-._~+/]+=*/gi, 'Bearer [redacted]'],
  // A JWT: three base64url parts, the first starting with {"  (eyJ).
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '[redacted-jwt]'],
  [/("?(?:access_token|refresh_token|id_token|accessToken|refreshToken|idToken|code|code_verifier|client_secret|password|token)"?\s*[:=]\s*"?)[^"&\s,}]+/gi, '$1[redacted]'],
];

export function redact(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** Redacts every string inside a log call's arguments (objects are redacted via their JSON). */
export function redactArgs(args: unknown[]): unknown[] {
  return args.map((a) => {
    if (typeof a === 'string') return redact(a);
    if (a instanceof Error) return redact(`${a.name}: ${a.message}`);
    if (a && typeof a === 'object') {
      try {
        return JSON.parse(redact(JSON.stringify(a))) as unknown;
      } catch {
        return '[unloggable object]';
      }
    }
    return a;
  });
}
