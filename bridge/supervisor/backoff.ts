/**
 * Reconnect delays: exponential backoff with "full jitter" (AWS Architecture Blog, 2015), capped.
 * Jitter spreads the reconnects of many desktops after a cloud restart so they do not arrive as
 * one wave; the floor keeps even an unlucky draw from becoming a tight loop.
 */
export interface BackoffOptions {
  /** Ceiling of the first delay. */
  initialMs: number;
  /** Ceiling never exceeds this, however many attempts fail. */
  maxMs: number;
  /** Ceiling grows by this factor per failed attempt. */
  factor: number;
  /** No delay is shorter than this. */
  minMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 60_000, factor: 2, minMs: 250 };

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {
    if (!(options.minMs > 0)) throw new RangeError('backoff minMs must be > 0 (a zero delay would allow a tight loop)');
    if (!(options.initialMs >= options.minMs)) throw new RangeError('backoff initialMs must be >= minMs');
    if (!(options.maxMs >= options.initialMs)) throw new RangeError('backoff maxMs must be >= initialMs');
    if (!(options.factor >= 1)) throw new RangeError('backoff factor must be >= 1');
  }

  /** Number of delays handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The ceiling for the current attempt, before jitter. */
  ceiling(): number {
    const grown = this.options.initialMs * this.options.factor ** this.attempt;
    return Math.min(this.options.maxMs, grown);
  }

  /** The next delay in ms: uniform in [minMs, ceiling]. */
  next(): number {
    const ceiling = this.ceiling();
    // Stop growing the exponent once capped, so it never overflows to Infinity.
    if (ceiling < this.options.maxMs) this.attempt += 1;
    else this.attempt = Math.max(this.attempt, 1);
    const { minMs } = this.options;
    return Math.round(minMs + this.random() * (ceiling - minMs));
  }

  /** Call once a connection has proved stable. */
  reset(): void {
    this.attempt = 0;
  }
}
