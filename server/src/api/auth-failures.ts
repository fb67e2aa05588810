/**
 * Failed authentications per client address (issue 13, finding 6: unauthenticated requests wrote
 * one audit line each, 10,000 in 1.2 s, with no limit per address). Each address has a window:
 * past `limit` failures in it, its further requests get 429 with Retry-After until the window
 * ends, without their tokens being checked. The audit log gets one line per address and window,
 * with the count by reason and route, when the window ends (or the server stops).
 */
import type { AuditLog } from '../audit.js';

export interface AuthFailureOptions {
  /** Failures an address may have in a window; the next requests are refused with 429. */
  limit: number;
  windowMs: number;
}

export const DEFAULT_AUTH_FAILURES: AuthFailureOptions = { limit: 30, windowMs: 60_000 };

/**
 * Failed client-key attempts per user, from all addresses together: ten addresses' worth, so a
 * stranger needs many addresses to lock a user's keys out for a minute, while a guessing run
 * against one user stays at a few hundred tries a minute (against 2^256 secrets).
 */
export const DEFAULT_KEY_FAILURES: AuthFailureOptions = { limit: 300, windowMs: 60_000 };

interface Window {
  start: number;
  failures: number;
  /** Requests refused with 429 because the address was over the limit. */
  limited: number;
  reasons: Record<string, number>;
  routes: Set<string>;
}

export class AuthFailureLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly options: AuthFailureOptions,
    private readonly audit: AuditLog,
  ) {
    this.timer = setInterval(() => this.flush(), Math.min(options.windowMs, 60_000));
    this.timer.unref();
  }

  /** Is `address` over its limit now? Counts nothing (edge routing asks before the real check). */
  isBlocked(address: string, now = Date.now()): boolean {
    const w = this.current(address, now, false);
    return w !== undefined && w.failures >= this.options.limit;
  }

  /** Seconds until the address may try again, when it is over the limit (the request is counted). */
  blocked(address: string, route: string, now = Date.now()): number | undefined {
    const w = this.current(address, now, false);
    if (!w || w.failures < this.options.limit) return undefined;
    w.limited += 1;
    w.routes.add(route);
    return Math.max(1, Math.ceil((w.start + this.options.windowMs - now) / 1000));
  }

  failed(address: string, reason: string, route: string, now = Date.now()): void {
    const w = this.current(address, now, true)!;
    w.failures += 1;
    w.reasons[reason] = (w.reasons[reason] ?? 0) + 1;
    w.routes.add(route);
  }

  /** Writes the audit line of every window that ended (all of them with `all`), and forgets it. */
  flush(all = false, now = Date.now()): void {
    for (const [address, w] of this.windows) {
      if (!all && now - w.start < this.options.windowMs) continue;
      this.windows.delete(address);
      this.audit.record({
        action: 'auth.failure',
        result: 'refused',
        address,
        count: w.failures,
        ...(w.limited ? { limited: w.limited } : {}),
        reasons: w.reasons,
        route: [...w.routes].sort().join(','),
        durationMs: Math.min(now, w.start + this.options.windowMs) - w.start,
      });
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.flush(true);
  }

  private current(address: string, now: number, create: boolean): Window | undefined {
    let w = this.windows.get(address);
    if (w && now - w.start >= this.options.windowMs) {
      this.flush(false, now);
      w = undefined;
    }
    if (!w && create) {
      w = { start: now, failures: 0, limited: 0, reasons: {}, routes: new Set() };
      this.windows.set(address, w);
    }
    return w;
  }
}
