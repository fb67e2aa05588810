import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, DEFAULT_BACKOFF } from './backoff.js';

const options = { initialMs: 100, maxMs: 1_000, factor: 2, minMs: 50 };

test('delays grow exponentially up to the cap', () => {
  const b = new Backoff(options, () => 1);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => b.next()), [100, 200, 400, 800, 1000, 1000]);
});

test('jitter spreads delays between the floor and the ceiling', () => {
  const b = new Backoff(options, () => 0);
  assert.equal(b.next(), 50, 'the floor holds when the draw is 0');
  const half = new Backoff(options, () => 0.5);
  half.next();
  assert.equal(half.next(), 125, 'halfway between 50 and the second ceiling of 200');
});

test('never a tight loop: every delay is at least the floor, even after a thousand failures', () => {
  const b = new Backoff(options);
  for (let i = 0; i < 1000; i++) {
    const d = b.next();
    assert.ok(d >= 50 && d <= 1000, `delay ${d} out of [50, 1000]`);
  }
});

test('reset starts over from the first delay', () => {
  const b = new Backoff(options, () => 1);
  b.next();
  b.next();
  b.reset();
  assert.equal(b.next(), 100);
});

test('refuses options that would allow a tight loop', () => {
  assert.throws(() => new Backoff({ ...options, minMs: 0 }), /tight loop/);
  assert.throws(() => new Backoff({ ...options, maxMs: 10 }), /maxMs/);
});

test('the defaults: ceilings 1, 2, 4 ... s up to a minute, never under 0.25 s', () => {
  assert.deepEqual(DEFAULT_BACKOFF, { initialMs: 1_000, maxMs: 60_000, factor: 2, minMs: 250 });
  const top = new Backoff(undefined, () => 1);
  assert.deepEqual(Array.from({ length: 8 }, () => top.next()), [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
  const bottom = new Backoff(undefined, () => 0);
  assert.deepEqual(Array.from({ length: 3 }, () => bottom.next()), [250, 250, 250]);
});
