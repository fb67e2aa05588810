/**
 * Proxies started before anyone asks for them, so that a user's start is a rename instead of a
 * network, a container and a Node boot (about 0.4 s at 10 proxies and twice that at 1,000 on
 * two cores: docs/benchmarks-proxies.md). The pool only keeps the count: making, taking and
 * discarding a spare are the runtime's (docker-runtime.ts).
 *
 * One spare is made at a time, in the background, so filling the pool never competes with more
 * than one start of its own. A start that finds the pool empty while a spare is being made waits
 * for that one (takeSoon) rather than make a proxy of its own beside it: the spare is already
 * part-way, and two starts at once would each take longer. Only one start waits so: a burst
 * does not queue behind a pool that makes one at a time. A spare that cannot be made is tried again after `retryMs`, not in a
 * loop: an engine without the image or without the firewall must not be hammered.
 */
import type { Logger } from '../../log.js';

export interface SparePoolOptions<S> {
  /** How many spares to keep; 0 keeps none. */
  size: number;
  make(): Promise<S>;
  /** Removes a spare that is no longer wanted (the pool closed, or it was made after that). */
  discard(spare: S): Promise<void>;
  /** The pause after a spare could not be made (default 30 s). */
  retryMs?: number;
  log: Logger;
}

export class SparePool<S extends { readonly spareId: string }> {
  private readonly ready: S[] = [];
  private filling: Promise<void> | undefined;
  /** The start waiting for the spare being made (takeSoon), if any. */
  private waiter: ((spare: S | undefined) => void) | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: SparePoolOptions<S>) {}

  /** Spares ready to be taken now. */
  get count(): number {
    return this.ready.length;
  }

  /** Whether `spareId` is one of the spares ready (not taken, not dropped). */
  has(spareId: string): boolean {
    return this.ready.some((s) => s.spareId === spareId);
  }

  /** The oldest spare, which is the caller's from now on; the pool starts making another. */
  take(): S | undefined {
    const spare = this.ready.shift();
    if (spare) this.fill();
    return spare;
  }

  /**
   * take(), or, when none is ready but one is being made and no other start waits for it, that
   * one once it is made (undefined if making it fails or the pool closes).
   */
  takeSoon(): Promise<S | undefined> {
    const ready = this.take();
    if (ready || !this.filling || this.waiter) return Promise.resolve(ready);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** Forgets a spare that ended on its own; the caller cleans up after it. */
  drop(spareId: string): S | undefined {
    const i = this.ready.findIndex((s) => s.spareId === spareId);
    if (i < 0) return undefined;
    const [spare] = this.ready.splice(i, 1);
    this.fill();
    return spare;
  }

  /** Makes spares until the pool holds `size`; a no-op while that already runs, or after close(). */
  fill(): void {
    if (this.closed || this.filling || this.retry || this.ready.length >= this.options.size) return;
    this.filling = this.fillLoop().finally(() => (this.filling = undefined));
  }

  /** Stops filling, waits for a spare being made, and discards every spare the pool holds. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.retry = undefined;
    await this.filling;
    this.hand(undefined);
    const spares = this.ready.splice(0);
    await Promise.all(spares.map((s) => this.discard(s)));
  }

  private async fillLoop(): Promise<void> {
    while (!this.closed && this.ready.length < this.options.size) {
      let spare: S;
      try {
        spare = await this.options.make();
      } catch (e) {
        this.hand(undefined);
        const retryMs = this.options.retryMs ?? 30_000;
        this.options.log.warn('could not start a spare proxy; the next user start makes its own', {
          error: e instanceof Error ? e.message : String(e),
          retryInMs: retryMs,
        });
        this.retry = setTimeout(() => {
          this.retry = undefined;
          this.fill();
        }, retryMs);
        this.retry.unref();
        return;
      }
      if (this.closed) {
        await this.discard(spare);
        return;
      }
      // To the start waiting for it, else into the pool; either way the loop makes the next.
      if (!this.hand(spare)) this.ready.push(spare);
    }
  }

  /** Gives the waiting start its answer; false when none waits. */
  private hand(spare: S | undefined): boolean {
    const waiter = this.waiter;
    if (!waiter) return false;
    this.waiter = undefined;
    waiter(spare);
    return true;
  }

  private discard(spare: S): Promise<void> {
    return this.options.discard(spare).catch((e: unknown) =>
      this.options.log.warn('could not remove a spare proxy', { spare: spare.spareId.slice(0, 12), error: e instanceof Error ? e.message : String(e) }),
    );
  }
}
