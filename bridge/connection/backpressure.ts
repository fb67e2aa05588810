/**
 * The one backpressure loop of the data path: every chunk of a body read on one side is written
 * to the other, and reading pauses while the writer's buffer is full, until it drains. Used on
 * both ends of the tunnel (the bridge writing Ollama's answer into its HTTP/2 stream, the
 * streaming proxy writing the stream into its HTTP response) and by the api-backend's gateway.
 *
 * Unlike pipe(), it ends nothing and forwards no error: the end of a body and a broken side mean
 * different things to each caller (a complete answer, a reset stream), so each says what they mean.
 */
import type { Readable, Writable } from 'node:stream';

export interface CopyOptions {
  /** Sees every chunk before it is written (counters, activity). */
  onChunk?: (chunk: Buffer) => void;
  /** Writes one chunk; false means "wait for 'drain'" (default: `to.write`). */
  write?: (chunk: Buffer) => boolean;
  /** After a refused write: true when the writer is gone for good, so the reader is destroyed instead of paused. */
  gone?: () => boolean;
}

export function copyWithBackpressure(from: Readable, to: Writable, options: CopyOptions = {}): void {
  const write = options.write ?? ((chunk: Buffer) => to.write(chunk));
  from.on('data', (chunk: Buffer) => {
    options.onChunk?.(chunk);
    if (write(chunk)) return;
    if (options.gone?.()) {
      from.destroy();
      return;
    }
    from.pause();
    to.once('drain', () => from.resume());
  });
}
