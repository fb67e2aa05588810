/**
 * The user's side of the proxy benchmark: users signed in through the embedded issuer's real
 * PKCE flow (headlessSignIn), and the cloud server's proxy API called the way the desktop app
 * calls it (POST /api/proxy/start and /stop with the user's access token).
 */
import http from 'node:http';
import { headlessSignIn, refreshHeadless } from '../scripts/headless-login.js';
import type { TokenSet } from '../main/auth/pkce-sign-in.js';
import { containerName } from '@cloudtolocalllm/proxy-spec/naming';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';

export interface Issuer {
  issuer: string;
  clientId: string;
  audience: string;
}

export interface BenchUser {
  index: number;
  /** Typed into the issuer's sign-in form: becomes the token's `sub`. */
  name: string;
  hash: string;
  /** `ctll-<stack>-proxy-<hash>`: the container name `docker stats` shows. */
  container: string;
  tokens?: TokenSet;
  /** Has a running proxy (as far as the benchmark knows). */
  running: boolean;
}

export function makeUser(run: string, index: number, stack: string): BenchUser {
  const name = `bench-${run}-${String(index).padStart(4, '0')}`;
  const hash = userHash(name);
  return { index, name, hash, container: containerName(hash, stack), running: false };
}

/** Signs the user in (or refreshes a token that expires within a minute). Returns the ms it took. */
export async function ensureSignedIn(user: BenchUser, issuer: Issuer): Promise<number> {
  const began = performance.now();
  const t = user.tokens;
  if (t && t.expiresAt - Date.now() > 60_000) return 0;
  if (t?.refreshToken) {
    try {
      user.tokens = await refreshHeadless({ issuer: issuer.issuer, clientId: issuer.clientId }, t);
      return performance.now() - began;
    } catch {
      // fall through to a fresh sign-in
    }
  }
  const tokens = await headlessSignIn({ issuer: issuer.issuer, clientId: issuer.clientId, audience: issuer.audience, username: user.name });
  if (tokens.subject !== undefined && tokens.subject !== user.name) {
    throw new Error(`signed in as ${user.name} but the token's subject is ${tokens.subject}`);
  }
  user.tokens = tokens;
  return performance.now() - began;
}

export interface ApiResult {
  status: number;
  ms: number;
  body: string;
}

// No keep-alive: a reused socket the server is just closing (its 5 s keep-alive timeout) would show up
// as a failed start; a fresh loopback connection costs a fraction of a millisecond.
const agent = new http.Agent({ keepAlive: false, maxSockets: 64 });

/** One API call; never rejects (a transport error is status 0 with the message as body). */
export function call(baseUrl: string, method: 'GET' | 'POST', path: string, token: string, timeoutMs = 180_000): Promise<ApiResult> {
  const began = performance.now();
  return new Promise((resolve) => {
    const body = method === 'POST' ? '{}' : undefined;
    const req = http.request(
      new URL(path, baseUrl),
      {
        method,
        agent,
        timeout: timeoutMs,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - began, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => resolve({ status: 0, ms: performance.now() - began, body: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (e) => resolve({ status: 0, ms: performance.now() - began, body: e.message }));
    req.end(body);
  });
}

/** GET without a token (/metrics, /health). */
export function getText(baseUrl: string, path: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL(path, baseUrl), { agent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
  });
}

/** Sum of a Prometheus metric's samples whose labels contain `labelFilter` (e.g. 'reason="unhealthy"'). */
export function metricValue(text: string, name: string, labelFilter = ''): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labelFilter && !rest.includes(labelFilter)) continue;
    const v = Number(rest.slice(rest.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) {
      sum += v;
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}

export function shortError(r: ApiResult): string {
  let message = r.body;
  try {
    const parsed = JSON.parse(r.body) as { error?: unknown };
    if (typeof parsed.error === 'string') message = parsed.error;
  } catch {
    // not JSON: keep the raw text
  }
  return `HTTP ${r.status}: ${message.replace(/\s+/g, ' ').slice(0, 600)}`;
}

/**
 * Runs `task` over `items` with at most `limit` in flight; stops taking new items once
 * `shouldStop()` says so (items not started are reported as skipped).
 */
export async function pool<T>(items: readonly T[], limit: number, task: (item: T, i: number) => Promise<void>, shouldStop: () => boolean = () => false): Promise<{ started: number }> {
  let next = 0;
  let started = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !shouldStop()) {
      const i = next++;
      started++;
      await task(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return { started };
}
