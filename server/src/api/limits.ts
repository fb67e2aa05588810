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

/**
 * Token buckets per user: `rate` tokens a second up to `capacity`. Requests take one token and
 * are refused without it; body bytes take as many as they are and may leave the bucket in debt,
 * the debt being how long to hold them. Full buckets are forgotten once there are many users.
 */
class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: number,
    private readonly capacity: number,
  ) {}

  /** The user's bucket, refilled up to `now`; the caller takes from `tokens`. */
  refill(user: string, now: number): { tokens: number } {
    const b = this.buckets.get(user) ?? { tokens: this.capacity, at: now };
    b.tokens = this.level(b, now);
    b.at = now;
    this.buckets.set(user, b);
    if (this.buckets.size > 10_000) {
      for (const [u, other] of this.buckets) if (u !== user && this.level(other, now) >= this.capacity) this.buckets.delete(u);
    }
    return b;
  }

  private level(b: { tokens: number; at: number }, now: number): number {
    return Math.min(this.capacity, b.tokens + ((now - b.at) / 1000) * this.rate);
  }
}

export class UserLimits {
  private readonly requests: TokenBuckets;
  private readonly bodyBytes: TokenBuckets;
  private readonly held: Record<SlotKind, Map<string, number>> = { request: new Map(), bridge: new Map() };

  constructor(readonly options: LimitOptions = DEFAULT_LIMITS) {
    this.requests = new TokenBuckets(options.requestsPerSecond, options.burst);
    this.bodyBytes = new TokenBuckets(options.bodyBytesPerSecond, options.bodyBurstBytes);
  }

  /** Takes one request token from the user's bucket. */
  takeRequest(user: string, now = Date.now()): LimitDecision {
    const { requestsPerSecond, burst } = this.options;
    const b = this.requests.refill(user, now);
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
    return { ok: true };
  }

  /**
   * Takes `bytes` of request body from the user's byte bucket (shared by all their requests);
   * returns how many ms to hold them before passing them on (0: at once). Never refuses.
   */
  takeBody(user: string, bytes: number, now = Date.now()): number {
    const b = this.bodyBytes.refill(user, now);
    b.tokens -= bytes;
    return b.tokens >= 0 ? 0 : Math.ceil((-b.tokens / this.options.bodyBytesPerSecond) * 1000);
  }

  /**
   * Would `bytes` of body pass the user's byte bucket at once (takeBody answering 0)? Takes
   * nothing: a body nginx sends straight to the proxy (edge-route.ts) must be one the gate would
   * not have slowed.
   */
  bodyFits(user: string, bytes: number, now = Date.now()): boolean {
    return bytes === 0 || this.bodyBytes.refill(user, now).tokens >= bytes;
  }

  /**
   * Takes one of the user's slots of `kind` (`request`: Ollama requests in flight; `bridge`:
   * bridge connections) and holds it until `holder` closes: the response or socket of the call
   * that took it. Whatever branch the call then leaves by (a refusal, an error, a dropped
   * socket, a success), it closes, so the slot comes back by construction (issue 13, finding 2:
   * refused bridge upgrades kept theirs until the server restarted). `hooks` keep the caller's
   * own counters in step: `taken` runs when the slot is taken, `released` once when it comes back.
   */
  acquire(kind: SlotKind, user: string, holder: SlotHolder, hooks: { taken?(): void; released?(): void } = {}, allowance = 0): LimitDecision {
    const slot = SLOTS[kind];
    const map = this.held[kind];
    // `allowance`: slots over the limit this call may take (a computer reconnecting under its own
    // name, whose older connection the proxy is about to drop).
    const max = this.options[slot.option] + allowance;
    const n = map.get(user) ?? 0;
    if (n >= max) return { ok: false, limit: slot.limit, message: slot.message(n, max), retryAfterSec: 1 };
    map.set(user, n + 1);
    hooks.taken?.();
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const left = (map.get(user) ?? 1) - 1;
      if (left <= 0) map.delete(user);
      else map.set(user, left);
      hooks.released?.();
    };
    if (holder.closed) release();
    else holder.once('close', release);
    return { ok: true };
  }

  /** Slots of `kind` in use: for the user, or for everybody. */
  inUse(kind: SlotKind, user?: string): number {
    const map = this.held[kind];
    if (user !== undefined) return map.get(user) ?? 0;
    let n = 0;
    for (const v of map.values()) n += v;
    return n;
  }
}

export type SlotKind = 'request' | 'bridge';

/** What holds a slot: a ServerResponse or a socket ('close' comes once, whatever happened). */
export interface SlotHolder {
  readonly closed: boolean;
  once(event: 'close', listener: () => void): unknown;
}

const SLOTS: Record<SlotKind, { option: 'maxConcurrentRequests' | 'maxBridgeConnections'; limit: string; message: (n: number, max: number) => string }> = {
  request: {
    option: 'maxConcurrentRequests',
    limit: 'concurrency',
    message: (n, max) => `too many requests at once: ${n} are already streaming for this account (limit ${max})`,
  },
  bridge: {
    option: 'maxBridgeConnections',
    limit: 'bridges',
    message: (n, max) =>
      `too many bridge connections: ${n} are open for this account (limit ${max}: CTLL_MAX_BRIDGES computers at once); disconnect one of your computers, or reconnect one under a name already connected to replace it`,
  },
};
