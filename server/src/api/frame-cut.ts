/**
 * Ends a spliced bridge connection from the middle with a close code of our own. The gateway
 * passes a bridge's tunnel through as raw bytes, so its own closing frame may only go in between
 * two frames of the proxy's: this tracks where the proxy's frames end on their way to the bridge
 * (WebSocket's, RFC 6455 §5.2, or HTTP/2's, RFC 9113 §4.1, by the tunnel's transport) and on
 * cut() stops at the next boundary, sends the closing frame and ends.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { goawayData, type TunnelTransport } from '@cloudtolocalllm/bridge/connection/protocol';

/** How one transport's frames are laid out, and how it says goodbye. */
interface Framing {
  /** Bytes before the first frame: HTTP/2's client preface. */
  readonly prefix: number;
  /** How long the header that starts `h` is, once enough of it is there (else undefined). */
  headerLength(h: Buffer): number | undefined;
  /** The payload length a whole header announces. */
  payloadLength(h: Buffer): number;
  closing(code: number, reason: string): Buffer;
}

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

/** A GOAWAY (RFC 9113 §6.8) with NO_ERROR, our close code and reason in its debug data. */
export function goawayFrame(code: number, reason: string): Buffer {
  const data = Buffer.from(goawayData(code, reason));
  const frame = Buffer.alloc(9 + 8 + data.length);
  frame.writeUIntBE(8 + data.length, 0, 3);
  frame[3] = 0x07; // GOAWAY; flags 0, stream 0
  // Last stream id 0: the bridge (the HTTP/2 server) opens no streams. Error code 0: NO_ERROR.
  data.copy(frame, 17);
  return frame;
}

const WEBSOCKET: Framing = {
  prefix: 0,
  headerLength(h) {
    if (h.length < 2) return undefined;
    const len7 = h[1]! & 0x7f;
    const masked = (h[1]! & 0x80) !== 0;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
  },
  payloadLength(h) {
    const len7 = h[1]! & 0x7f;
    return len7 === 126 ? h.readUInt16BE(2) : len7 === 127 ? Number(h.readBigUInt64BE(2)) : len7;
  },
  closing: closeFrame,
};

/** The proxy is the HTTP/2 client: its bytes start with the 24-byte preface, then 9-byte frame headers. */
const HTTP2: Framing = {
  prefix: 24,
  headerLength: () => 9,
  payloadLength: (h) => h.readUIntBE(0, 3),
  closing: goawayFrame,
};

export class FrameCut extends Transform {
  private readonly framing: Framing;
  /** Header bytes of the frame being read, until its length is known. */
  private header = Buffer.alloc(0);
  private payloadLeft: number;
  private pending: Buffer | undefined;
  private done = false;

  constructor(transport: TunnelTransport) {
    super();
    this.framing = transport === 'h2' ? HTTP2 : WEBSOCKET;
    this.payloadLeft = this.framing.prefix;
  }

  /** Sends `code` at the next frame boundary (now, when between frames) and ends the stream. */
  cut(code: number, reason: string): void {
    if (this.done || this.pending) return;
    this.pending = this.framing.closing(code, reason);
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
      const need = this.framing.headerLength(this.header) ?? 2;
      const take = Math.min(need - this.header.length, chunk.length - at);
      this.header = Buffer.concat([this.header, chunk.subarray(at, at + take)]);
      at += take;
      const full = this.framing.headerLength(this.header);
      if (full !== undefined && this.header.length === full) {
        this.payloadLeft = this.framing.payloadLength(this.header);
        this.header = Buffer.alloc(0);
      }
    }
    this.push(chunk);
    if (this.pending && this.atBoundary()) this.finishCut();
    callback();
  }
}
