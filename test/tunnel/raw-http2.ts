/**
 * A bridge that speaks HTTP/2 by hand, frame by frame, over the tunnel's WebSocket: what a
 * malicious or broken bridge can send that Node's own http2 server never would (a status of 999,
 * upper-case or forbidden header names, control characters, MAX_CONCURRENT_STREAMS=0, garbage,
 * silence). Only the server side of RFC 9113 that the tests need: the preface, SETTINGS and PING
 * acknowledgements, and a callback per request stream. HPACK is written as literal fields only
 * (RFC 7541 §6.2.2), so no table is ever needed; incoming header blocks are not decoded.
 */
import WebSocket from 'ws';
import { BRIDGE_PATH, subprotocolFor, TUNNEL_PROTOCOL_VERSION } from '@cloudtolocalllm/bridge/connection/protocol';

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
const PREFACE_LENGTH = 24;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

function hpackInteger(value: number, prefixBits: number, flags: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [flags | value];
  const out = [flags | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.concat([Buffer.from(hpackInteger(bytes.length, 7, 0)), bytes]);
}

/** A header block of "literal field without indexing, new name" entries, in the order given. */
export function headerBlock(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0]), hpackString(name), hpackString(value)]));
}

export function settings(entries: ReadonlyArray<readonly [number, number]>): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

export interface RawBridge {
  ws: WebSocket;
  send(bytes: Buffer): void;
  close(): void;
}

/**
 * Connects to the proxy at `proxyUrl` as a bridge, answers the HTTP/2 handshake (sending
 * `initialSettings` as its own SETTINGS), and calls `onRequest` with each new request stream id.
 */
export function connectRawBridge(
  proxyUrl: string,
  token: string,
  initialSettings: ReadonlyArray<readonly [number, number]>,
  onRequest: (streamId: number, bridge: RawBridge) => void,
): Promise<RawBridge> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(proxyUrl + BRIDGE_PATH, [subprotocolFor(TUNNEL_PROTOCOL_VERSION)], {
      headers: { authorization: `Bearer ${token}` },
      perMessageDeflate: false,
    });
    const bridge: RawBridge = {
      ws,
      send: (bytes) => {
        if (ws.readyState === ws.OPEN) ws.send(bytes);
      },
      close: () => ws.terminate(),
    };
    let buffer = Buffer.alloc(0);
    let prefaceSeen = false;
    const seen = new Set<number>();
    ws.on('message', (data: Buffer) => {
      buffer = Buffer.concat([buffer, data]);
      if (!prefaceSeen) {
        if (buffer.length < PREFACE_LENGTH) return;
        buffer = buffer.subarray(PREFACE_LENGTH);
        prefaceSeen = true;
      }
      while (buffer.length >= 9) {
        const length = buffer.readUIntBE(0, 3);
        if (buffer.length < 9 + length) return;
        const type = buffer.readUInt8(3);
        const flags = buffer.readUInt8(4);
        const streamId = buffer.readUInt32BE(5) & 0x7fffffff;
        const payload = buffer.subarray(9, 9 + length);
        buffer = buffer.subarray(9 + length);
        if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) bridge.send(frame(FrameType.SETTINGS, Flag.ACK, 0));
        else if (type === FrameType.PING && !(flags & Flag.ACK)) bridge.send(frame(FrameType.PING, Flag.ACK, 0, Buffer.from(payload)));
        else if (type === FrameType.HEADERS && !seen.has(streamId)) {
          seen.add(streamId);
          onRequest(streamId, bridge);
        }
      }
    });
    ws.on('open', () => {
      bridge.send(settings(initialSettings));
      resolve(bridge);
    });
    ws.on('error', reject);
  });
}
