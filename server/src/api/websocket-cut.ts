/**
 * Ends a spliced WebSocket from the middle with a close code of our own. The gateway passes a
 * bridge's WebSocket through as raw bytes, so a close frame may only go in between two frames
 * of the proxy's: this tracks where the proxy's frames end (RFC 6455 §5.2) on their way to the
 * bridge, and on cut() stops at the next boundary, sends the close frame and ends.
 */
import { Transform, type TransformCallback } from 'node:stream';

/** A close frame from the server side (unmasked, RFC 6455 §5.5.1): the code and a short reason. */
export function closeFrame(code: number, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, 123); // a control frame's payload is at most 125 bytes
  const frame = Buffer.alloc(4 + text.length);
  frame[0] = 0x88; // FIN + close
  frame[1] = 2 + text.length;
  frame.writeUInt16BE(code, 2);
  text.copy(frame, 4);
  return frame;
}

export class WebSocketCut extends Transform {
  /** Header bytes of the frame being read, until its length is known. */
  private header = Buffer.alloc(0);
  private payloadLeft = 0;
  private pending: Buffer | undefined;
  private done = false;

  /** Sends `code` at the next frame boundary (now, when between frames) and ends the stream. */
  cut(code: number, reason: string): void {
    if (this.done || this.pending) return;
    this.pending = closeFrame(code, reason);
    if (this.atBoundary()) this.finishCut();
  }

  private atBoundary(): boolean {
    return this.header.length === 0 && this.payloadLeft === 0;
  }

  private finishCut(): void {
    this.done = true;
    this.push(this.pending);
    this.push(null);
  }

  /** How long the header that starts `h` is, once enough of it is there (else undefined). */
  private static headerLength(h: Buffer): number | undefined {
    if (h.length < 2) return undefined;
    const len7 = h[1]! & 0x7f;
    const masked = (h[1]! & 0x80) !== 0;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    if (this.done) return callback();
    let at = 0;
    while (at < chunk.length) {
      if (this.pending && this.atBoundary()) {
        if (at > 0) this.push(chunk.subarray(0, at));
        this.finishCut();
        return callback();
      }
      if (this.payloadLeft > 0) {
        const take = Math.min(this.payloadLeft, chunk.length - at);
        this.payloadLeft -= take;
        at += take;
        continue;
      }
      // Reading a header, a byte at a time until its length is known, then the rest of it.
      const need = WebSocketCut.headerLength(this.header) ?? 2;
      const take = Math.min(need - this.header.length, chunk.length - at);
      this.header = Buffer.concat([this.header, chunk.subarray(at, at + take)]);
      at += take;
      const full = WebSocketCut.headerLength(this.header);
      if (full !== undefined && this.header.length === full) {
        const len7 = this.header[1]! & 0x7f;
        this.payloadLeft = len7 === 126 ? this.header.readUInt16BE(2) : len7 === 127 ? Number(this.header.readBigUInt64BE(2)) : len7;
        this.header = Buffer.alloc(0);
      }
    }
    this.push(chunk);
    if (this.pending && this.atBoundary()) this.finishCut();
    callback();
  }
}
