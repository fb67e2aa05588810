import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BodyGate, BodyStallError } from './body-gate.js';
import { DEFAULT_LIMITS, UserLimits } from './limits.js';

test('UserLimits.takeBody: the burst passes at once, then bytes wait their turn at the rate', () => {
  const limits = new UserLimits({ ...DEFAULT_LIMITS, bodyBytesPerSecond: 1000, bodyBurstBytes: 2000 });
  const rate = { take: (user: string, bytes: number, now: number) => limits.takeBody(user, bytes, now) };
  assert.equal(rate.take('a', 2000, 0), 0, 'the whole burst');
  assert.equal(rate.take('a', 500, 0), 500, '500 bytes over: half a second');
  assert.equal(rate.take('a', 500, 0), 1000, 'the debt adds up');
  assert.equal(rate.take('b', 2000, 0), 0, 'another user has a bucket of their own');
  assert.equal(rate.take('a', 0, 1000), 0, 'a second later the debt of 1000 is paid');
  assert.equal(rate.take('a', 1000, 1500), 500, 'and it refills at the rate from there');
  assert.equal(rate.take('a', 1, 60_000), 0, 'an idle bucket is full again');
  assert.equal(rate.take('a', 2000, 60_000), 1, 'but never above the burst');
});

test('UserLimits.bodyFits: takes nothing, and says whether takeBody would pass the bytes at once', () => {
  const limits = new UserLimits({ ...DEFAULT_LIMITS, bodyBytesPerSecond: 1000, bodyBurstBytes: 2000 });
  assert.equal(limits.bodyFits('a', 2000, 0), true);
  assert.equal(limits.bodyFits('a', 2000, 0), true, 'asking took nothing');
  assert.equal(limits.bodyFits('a', 2001, 0), false, 'over the burst');
  assert.equal(limits.takeBody('a', 1500, 0), 0);
  assert.equal(limits.bodyFits('a', 600, 0), false, 'only 500 left');
  assert.equal(limits.bodyFits('a', 600, 100), true, 'refilled by 100 in 0.1 s');
  assert.equal(limits.takeBody('a', 1000, 100), 400, 'in debt now');
  assert.equal(limits.bodyFits('a', 1, 100), false);
  assert.equal(limits.bodyFits('a', 0, 100), true, 'no body always fits');
});

function collect(): { sink: Writable; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  return {
    sink: new Writable({ write: (c: Buffer, _e, done) => (parts.push(c), done()) }),
    bytes: () => Buffer.concat(parts),
  };
}

test('BodyGate holds chunks as told and delivers every byte in order', async () => {
  const chunks = Array.from({ length: 6 }, (_, i) => Buffer.alloc(100, i));
  const held: number[] = [];
  let n = 0;
  const gate = new BodyGate({ take: () => (n++ % 2 ? 30 : 0), stallMs: 5_000, onThrottle: (ms) => held.push(ms) });
  const out = collect();
  await pipeline(Readable.from(chunks), gate, out.sink);
  assert.deepEqual(out.bytes(), Buffer.concat(chunks));
  assert.deepEqual(held, [30, 30, 30]);
});

test('BodyGate: a client that stops sending mid-body is a stall', async () => {
  const source = new PassThrough();
  let stalled = 0;
  const gate = new BodyGate({ take: () => 0, stallMs: 100, onStall: () => stalled++ });
  source.write('{"model": ');
  const out = collect();
  await assert.rejects(pipeline(source, gate, out.sink), (e) => e instanceof BodyStallError && /no bytes arrived for 0.1 s/.test(e.message));
  assert.equal(stalled, 1);
  assert.equal(out.bytes().toString(), '{"model": ', 'what came is passed on');
});

test('BodyGate: time it holds a chunk itself, or the receiver is slow, is not a stall', async () => {
  const source = new PassThrough();
  const gate = new BodyGate({ take: () => 300, stallMs: 100 });
  const out = collect();
  const done = pipeline(source, gate, out.sink);
  source.end('x'.repeat(10));
  await done;
  assert.equal(out.bytes().length, 10);

  // A receiver that takes nothing for a while: the bytes wait in the gate, the client is fine.
  const slowSource = new PassThrough();
  const slowGate = new BodyGate({ take: () => 0, stallMs: 100 });
  let release: () => void = () => {};
  const received: Buffer[] = [];
  const slowSink = new Writable({
    highWaterMark: 1,
    write: (c: Buffer, _e, cb) => {
      received.push(c);
      if (received.length === 1) release = cb;
      else cb();
    },
  });
  const slow = pipeline(slowSource, slowGate, slowSink);
  for (let i = 0; i < 50; i++) slowSource.write(Buffer.alloc(16 * 1024));
  slowSource.end();
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(slowGate.destroyed, false, 'no stall while the receiver holds the flow');
  release();
  await slow;
  assert.equal(Buffer.concat(received).length, 50 * 16 * 1024);
});

test('BodyGate: an empty body ends at once without a stall', async () => {
  const gate = new BodyGate({ take: () => 0, stallMs: 50 });
  const out = collect();
  await pipeline(Readable.from([]), gate, out.sink);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(gate.errored, null);
});
