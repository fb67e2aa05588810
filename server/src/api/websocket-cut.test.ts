import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { closeFrame, WebSocketCut } from './websocket-cut.js';

/** An unmasked frame as a server sends it, with the length forms of RFC 6455 §5.2. */
function frame(payload: Buffer, opcode = 0x2): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 127]), Buffer.alloc(8)]);
  if (n >= 65536) head.writeBigUInt64BE(BigInt(n), 2);
  return Buffer.concat([head, payload]);
}

async function collect(cut: WebSocketCut): Promise<Buffer> {
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
    const cut = new WebSocketCut();
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
  const cut = new WebSocketCut();
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
  let cutter: WebSocketCut | undefined;
  gateway.on('upgrade', (req, socket) => {
    const up = http.request({ port: (upstream.address() as AddressInfo).port, host: '127.0.0.1', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': req.headers['sec-websocket-key']!, 'sec-websocket-version': '13' } });
    up.on('upgrade', (res, upSocket, upHead) => {
      let head = `HTTP/1.1 101 Switching Protocols\r\n`;
      for (let i = 0; i < res.rawHeaders.length; i += 2) head += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
      socket.write(head + '\r\n');
      cutter = new WebSocketCut();
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
