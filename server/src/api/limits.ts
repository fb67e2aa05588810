/**
 * Per-user limits at the edge: a token bucket for request rate and counters for concurrent
 * requests and bridge connections. Each refusal names the limit and when to retry. The request
 * body rate and stall limits are applied while a body streams (body-gate.ts).
 */
export interface LimitOptions {
  /** Sustained requests per second per user. */
  requestsPerSecond: number;
  /** Requests a user may make in a burst above the sustained rate. */
  burst: number;
  /** Ollama requests in flight per user. */
  maxConcurrentRequests: number;
  /** Bridge connections open per user (one is normal; a reconnect briefly makes two). */
  maxBridgeConnections: number;
  /** Sustained `/ollama/*` request-body bytes per second per user; faster bodies are slowed. */
  bodyBytesPerSecond: number;
  /** Body bytes a user may send at full speed before the rate applies. */
  bodyBurstBytes: number;
  /** A body that sends nothing for this long (ms) is given up with 408. */
  bodyStallMs: number;
}

export const DEFAULT_LIMITS: LimitOptions = {
  requestsPerSecond: 20,
  burst: 100,
  maxConcurrentRequests: 64,
  maxBridgeConnections: 4,
  // 8 MiB/s (64 Mbit/s) sustained and 32 MiB at once: a chat with a few photos passes untouched,
  // a model blob upload is paced so one user cannot take the server's whole uplink.
  bodyBytesPerSecond: 8 * 1024 * 1024,
  bodyBurstBytes: 32 * 1024 * 1024,
  bodyStallMs: 60_000,
};

export type LimitDecision = { ok: true } | { ok: false; limit: string; message: string; retryAfterSec: number };

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class UserLimits {
  private readonly buckets = new Map<string, Bucket>();
  private readonly concurrent = new Map<string, number>();
  private readonly bridges = new Map<string, number>();

  constructor(readonly options: LimitOptions = DEFAULT_LIMITS) {}

  /** Takes one request token from the user's bucket. */
  takeRequest(user: string, now = Date.now()): LimitDecision {
    const { requestsPerSecond, burst } = this.options;
    const b = this.buckets.get(user) ?? { tokens: burst, updatedAt: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.updatedAt) / 1000) * requestsPerSecond);
    b.updatedAt = now;
    this.buckets.set(user, b);
    if (b.tokens < 1) {
      const retryAfterSec = Math.max(1, Math.ceil((1 - b.tokens) / requestsPerSecond));
      return {
        ok: false,
        limit: 'rate',
        message: `too many requests: the limit is ${requestsPerSecond} per second (bursts of ${burst}); retry in ${retryAfterSec} s`,
        retryAfterSec,
      };
    }
    b.tokens -= 1;
    // Forget idle users so the map does not grow with every user ever seen.
    if (this.buckets.size > 10_000) this.forgetFullBuckets(now);
    return { ok: true };
  }

  /** Reserves a concurrent request slot; call the returned release exactly once. */
  openRequest(user: string): LimitDecision & { release?: () => void } {
    return this.open(this.concurrent, user, this.options.maxConcurrentRequests, 'concurrency', (n) =>
      `too many requests at once: ${n} are already streaming for this account (limit ${this.options.maxConcurrentRequests})`,
    );
  }

  openBridge(user: string): LimitDecision & { release?: () => void } {
    return this.open(this.bridges, user, this.options.maxBridgeConnections, 'bridges', (n) =>
      `too many bridge connections: ${n} are open for this account (limit ${this.options.maxBridgeConnections}); close other CloudToLocalLLM instances`,
    );
  }

  private open(map: Map<string, number>, user: string, max: number, limit: string, message: (n: number) => string): LimitDecision & { release?: () => void } {
    const n = map.get(user) ?? 0;
    if (n >= max) return { ok: false, limit, message: message(n), retryAfterSec: 1 };
    map.set(user, n + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        const left = (map.get(user) ?? 1) - 1;
        if (left <= 0) map.delete(user);
        else map.set(user, left);
      },
    };
  }

  private forgetFullBuckets(now: number): void {
    for (const [user, b] of this.buckets) {
      if (b.tokens + ((now - b.updatedAt) / 1000) * this.options.requestsPerSecond >= this.options.burst) this.buckets.delete(user);
    }
  }
}
