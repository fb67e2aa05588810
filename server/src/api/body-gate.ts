/**
 * The gate every `/ollama/*` request body passes on its way to the user's proxy. Two limits:
 *
 *  - a byte rate per user (UserLimits.takeBody in limits.ts: a token bucket shared by all of the
 *    user's requests): bodies above it are slowed down, never refused or cut, so a big upload (a model blob, an image prompt) still
 *    arrives whole, only no faster than the limit. Slowing works through backpressure: while the
 *    gate holds a chunk it reads nothing more, so TCP flow control pushes back to the client;
 *  - a stall timeout: a client that sends part of a body and then nothing holds a proxy stream
 *    and a concurrency slot for ever (Node's server has no body timeout here, as uploads and
 *    generations legitimately take long). Time the gate itself holds a chunk does not count.
 */
import { Transform, type TransformCallback } from 'node:stream';

export interface BodyGateOptions {
  /** Returns the ms to hold a chunk of this size (UserLimits.takeBody bound to the user). */
  take: (bytes: number) => number;
  /** Ms without a byte from the client, while the body is incomplete, before giving up. */
  stallMs: number;
  /** Called once when the client stalled; the gate then errors with a BodyStallError. */
  onStall?: () => void;
  /** Called with every ms the gate held chunks back, for metrics. */
  onThrottle?: (ms: number) => void;
}

export class BodyStallError extends Error {
  constructor(readonly stallMs: number) {
    super(`the request body stalled: no bytes arrived for ${stallMs / 1000} s`);
    this.name = 'BodyStallError';
  }
}

export class BodyGate extends Transform {
  private stallTimer: NodeJS.Timeout | undefined;
  private holdTimer: NodeJS.Timeout | undefined;

  constructor(private readonly gate: BodyGateOptions) {
    super();
    this.watchForStall();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const wait = this.gate.take(chunk.length);
    if (wait <= 0) {
      this.watchForStall();
      return done(null, chunk);
    }
    // Held by us, not stalled by the client: the stall clock stops until the chunk goes on.
    this.stopWatching();
    this.gate.onThrottle?.(wait);
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      this.watchForStall();
      done(null, chunk);
    }, wait);
  }

  override _flush(done: TransformCallback): void {
    this.stopWatching();
    done();
  }

  override _destroy(error: Error | null, done: (error: Error | null) => void): void {
    this.stopWatching();
    clearTimeout(this.holdTimer);
    done(error);
  }

  private watchForStall(): void {
    this.stopWatching();
    this.stallTimer = setTimeout(() => {
      // Bytes still waiting here mean the proxy side is slow to take them, not the client.
      if (this.writableLength > 0 || this.readableLength > 0) return this.watchForStall();
      this.gate.onStall?.();
      this.destroy(new BodyStallError(this.gate.stallMs));
    }, this.gate.stallMs);
  }

  private stopWatching(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }
}
