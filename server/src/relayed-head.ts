/**
 * The head of a relayed answer (the proxy's relay of its bridge, the api-backend's of a proxy or
 * a peer). It leaves with the body's first chunk when that chunk comes in the same turn of the
 * event loop, as a small answer's does: one write and one packet to the client instead of two
 * (`strace -c` on the proxy during bench:tunnel's small requests: 2 writes per request instead
 * of 3). Otherwise it leaves at the end of this turn, so a client waiting on a slow model load
 * still sees at once that its request was taken.
 */
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { copyWithBackpressure, type CopyOptions } from '@cloudtolocalllm/bridge/connection/backpressure';

export class PendingHead {
  private out = false;

  /** After `res.writeHead()`. */
  constructor(private readonly res: ServerResponse) {
    setImmediate(() => this.send());
  }

  /** A chunk of the body is being written: Node sends the head with it. */
  carried(): void {
    this.out = true;
  }

  /** Sends the head now if no chunk took it (before an answer is cut: the client sees the head it was promised). */
  send(): void {
    if (this.out || this.res.writableEnded || this.res.destroyed) return;
    this.out = true;
    this.res.flushHeaders();
  }
}

/**
 * Relays an answer's body to `res` (after `res.writeHead()`), its head leaving with the first
 * chunk or at the end of this turn; the PendingHead returned sends it before a cut.
 */
export function copyAnswer(from: Readable, res: ServerResponse, options: Pick<CopyOptions, 'onChunk'> = {}): PendingHead {
  const head = new PendingHead(res);
  copyWithBackpressure(from, res, {
    onChunk: (chunk) => {
      head.carried();
      options.onChunk?.(chunk);
    },
  });
  return head;
}
