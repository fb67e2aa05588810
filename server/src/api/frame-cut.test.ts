import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { closeFrame, FrameCut, goawayFrame } from './frame-cut.js';
import { parseGoawayData } from '@cloudtolocalllm/bridge/connection/protocol';

/** An unmasked frame as a server sends it, with the length forms of RFC 6455 §5.2. */
function frame(payload: Buffer, opcode = 0x2): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 127]), Buffer.alloc(8)]);
  if (n >= 65536) head.writeBigUInt64BE(BigInt(n), 2);
  return Buffer.concat([head, payload]);
}

async function collect(cut: FrameCut): Promise<Buffer> {
  const parts: Buffer[] = [];
  cut.on('data', (c: Buffer) => parts.push(c));
  await once(cut, 'end');
  return Buffer.concat(parts);
}

test('a cut asked for in the middle of a frame waits for its end, whatever the chunking; nothing after it passes', async () => {
  const frames = [frame(Buffer.alloc(10, 1)), frame(Buffer.alloc(300, 2)), frame(Buffer.alloc(70_000, 3)), frame(Buffer.alloc(5, 4))];
  const stream = Buffer.concat(frames);
  const end = frames[0]!.length + frames[1]!.length + frames[2]!.length;
  for (const size of [1, 3, 7, 1000, stream.length]) {
    const cut = new FrameCut('websocket');
    const out = collect(cut);
    const write = (part: Buffer): void => {
      for (let at = 0; at < part.length; at += size) cut.write(part.subarray(at, at + size));
    };
    // Asked once the third frame has begun: the cut lands after it, before the fourth.
    const inThird = frames[0]!.length + frames[1]!.length + 5;
    write(stream.subarray(0, inThird));
    cut.cut(4005, 'moved');
    write(stream.subarray(inThird));
    assert.deepEqual(await out, Buffer.concat([stream.subarray(0, end), closeFrame(4005, 'moved')]), `chunks of ${size}`);
  }
});

test('between frames the cut goes out at once', async () => {
  const cut = new FrameCut('websocket');
  const out = collect(cut);
  cut.write(frame(Buffer.from('hi')));
  cut.cut(4005, 'now');
  assert.deepEqual(await out, Buffer.concat([frame(Buffer.from('hi')), closeFrame(4005, 'now')]));
});

test('a real ws client behind the cut sees the close code and reason', async () => {
  const upstream = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(upstream, 'listening');
  upstream.on('connection', (ws) => {
    ws.send('one');
    ws.send(Buffer.alloc(200_000, 7));
  });
  // A gateway that splices the raw upstream bytes through the cut, as bridge-forward.ts does.
  const gateway = http.createServer();
  let cutter: FrameCut | undefined;
  gateway.on('upgrade', (req, socket) => {
    const up = http.request({ port: (upstream.address() as AddressInfo).port, host: '127.0.0.1', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': req.headers['sec-websocket-key']!, 'sec-websocket-version': '13' } });
    up.on('upgrade', (res, upSocket, upHead) => {
      let head = `HTTP/1.1 101 Switching Protocols\r\n`;
      for (let i = 0; i < res.rawHeaders.length; i += 2) head += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
      socket.write(head + '\r\n');
      cutter = new FrameCut('websocket');
      upSocket.pipe(cutter).pipe(socket);
      if (upHead.length) cutter.write(upHead);
    });
    up.end();
  });
  gateway.listen(0, '127.0.0.1');
  await once(gateway, 'listening');
  const client = new WebSocket(`ws://127.0.0.1:${(gateway.address() as AddressInfo).port}`);
  const messages: number[] = [];
  client.on('message', (m: Buffer) => {
    messages.push(m.length);
    if (messages.length === 1) cutter!.cut(4005, 'another node owns this account now');
  });
  const [code, reason] = (await once(client, 'close')) as [number, Buffer];
  assert.equal(code, 4005);
  assert.equal(reason.toString(), 'another node owns this account now');
  assert.ok(messages[0] === 3 && messages.every((n) => n === 3 || n === 200_000), `whole messages only: ${messages.join(',')}`);
  upstream.close();
  gateway.close();
  gateway.closeAllConnections();
  for (const ws of upstream.clients) ws.terminate();
});

/** An HTTP/2 frame (RFC 9113 §4.1) of `type` on `stream`. */
function h2Frame(payload: Buffer, type = 0x0, stream = 1): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

test('HTTP/2: after the 24-byte preface, a cut waits for the end of the frame it falls in, whatever the chunking', async () => {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const frames = [h2Frame(Buffer.alloc(6), 0x4, 0), h2Frame(Buffer.alloc(40_000, 2)), h2Frame(Buffer.alloc(0), 0x0), h2Frame(Buffer.alloc(9, 4))];
  const stream = Buffer.concat([preface, ...frames]);
  for (const size of [1, 5, 9, 1000, stream.length]) {
    for (const askAt of [10, preface.length + frames[0]!.length + 3]) {
      const cut = new FrameCut('h2');
      const out = collect(cut);
      const write = (part: Buffer): void => {
        for (let at = 0; at < part.length; at += size) cut.write(part.subarray(at, at + size));
      };
      // Asked inside the preface (a 24-byte run of no frame), or inside the second frame's header.
      write(stream.subarray(0, askAt));
      cut.cut(4005, 'moved');
      write(stream.subarray(askAt));
      const expectedEnd = askAt < preface.length ? preface.length : preface.length + frames[0]!.length + frames[1]!.length;
      assert.deepEqual(await out, Buffer.concat([stream.subarray(0, expectedEnd), goawayFrame(4005, 'moved')]), `chunks of ${size}, asked at ${askAt}`);
    }
  }
});

test('HTTP/2: a real HTTP/2 server behind the cut gets a GOAWAY carrying the close code and reason', async () => {
  // The bridge's side: an HTTP/2 server on a plain socket, answering every stream with 64 KiB.
  const bridge = http2.createServer();
  let told: { code: number; data: string } | undefined;
  bridge.on('session', (s) => s.on('goaway', (code: number, _last: number, data?: Buffer) => (told ??= { code, data: data?.toString() ?? '' })));
  bridge.on('stream', (s) => {
    s.respond({ ':status': 200 });
    s.end(Buffer.alloc(65_536, 1));
  });
  // The gateway: the proxy's bytes pass the cut on their way to the bridge, the bridge's straight back.
  let cutter: FrameCut | undefined;
  const gateway = net.createServer((proxySide) => {
    const bridgeSide = net.connect((bridgeListener.address() as AddressInfo).port, '127.0.0.1');
    cutter = new FrameCut('h2');
    proxySide.pipe(cutter).pipe(bridgeSide);
    bridgeSide.pipe(proxySide);
    bridgeSide.on('error', () => proxySide.destroy());
    proxySide.on('error', () => bridgeSide.destroy());
  });
  const bridgeListener = net.createServer((socket) => bridge.emit('connection', socket));
  await new Promise<void>((r) => bridgeListener.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
  const proxy = http2.connect(`http://127.0.0.1:${(gateway.address() as AddressInfo).port}`);
  proxy.on('error', () => {});
  const fetchOne = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = proxy.request({ ':path': '/x' });
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => resolve(n));
      req.on('error', reject);
      req.end();
    });
  assert.equal(await fetchOne(), 65_536);
  assert.equal(await fetchOne(), 65_536, 'the stream before the cut is whole');
  cutter!.cut(4005, 'another node owns this account now');
  await waitFor(() => told !== undefined);
  assert.deepEqual(told, { code: 0, data: '4005 another node owns this account now' });
  assert.deepEqual(parseGoawayData(Buffer.from(told!.data)), { code: 4005, reason: 'another node owns this account now' });
  proxy.destroy();
  gateway.close();
  bridgeListener.close();
  bridge.close();
});

async function waitFor(predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
