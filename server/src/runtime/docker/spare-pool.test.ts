/**
 * The spare pool's bookkeeping without an engine: one spare made at a time up to the size, a
 * taken or dropped one replaced, a failure retried after the pause (not in a loop), and close()
 * discarding every spare, also one that was still being made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../log.js';
import { SparePool } from './spare-pool.js';

interface FakeSpare {
  spareId: string;
}

function harness(size: number, options: { failFirst?: number; makeMs?: number } = {}) {
  let made = 0;
  let failures = options.failFirst ?? 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const discarded: string[] = [];
  const pool = new SparePool<FakeSpare>({
    size,
    retryMs: 50,
    log: silentLogger,
    make: async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await sleep(options.makeMs ?? 5);
        if (failures > 0) {
          failures--;
          throw new Error('no image');
        }
        return { spareId: `s${++made}` };
      } finally {
        inFlight--;
      }
    },
    discard: async (s) => void discarded.push(s.spareId),
  });
  return { pool, discarded, made: () => made, maxInFlight: () => maxInFlight };
}

async function until(ok: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 5_000; !ok(); await sleep(5)) if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
}

test('fills to its size one spare at a time, and replaces each one taken or dropped', async () => {
  const h = harness(3);
  h.pool.fill();
  h.pool.fill(); // a second call while filling is a no-op
  await until(() => h.pool.count === 3, 'three spares');
  assert.equal(h.made(), 3);
  assert.equal(h.maxInFlight(), 1, 'never more than one spare made at once');

  const taken = h.pool.take();
  assert.equal(taken?.spareId, 's1', 'the oldest first');
  assert.equal(h.pool.has('s1'), false);
  await until(() => h.pool.count === 3, 'the taken one replaced');
  assert.equal(h.made(), 4);

  assert.equal(h.pool.drop('s2')?.spareId, 's2');
  assert.equal(h.pool.drop('s2'), undefined, 'dropped once only');
  assert.equal(h.pool.drop('nobody'), undefined);
  await until(() => h.pool.count === 3, 'the dropped one replaced');
  assert.deepEqual(h.discarded, [], 'taken and dropped spares are the caller\'s to clean up');
  await h.pool.close();
  assert.deepEqual(h.discarded.sort(), ['s3', 's4', 's5']);
});

test('size 0 makes nothing and take() answers undefined', async () => {
  const h = harness(0);
  h.pool.fill();
  await sleep(20);
  assert.equal(h.made(), 0);
  assert.equal(h.pool.take(), undefined);
  await h.pool.close();
});

test('a spare that cannot be made is tried again after the pause, not in a loop', async () => {
  const h = harness(1, { failFirst: 2 });
  h.pool.fill();
  await sleep(20);
  assert.equal(h.pool.count, 0);
  h.pool.fill(); // inside the pause: no new attempt
  await until(() => h.pool.count === 1, 'the spare after two failures');
  assert.equal(h.made(), 1);
  await h.pool.close();
  assert.deepEqual(h.discarded, ['s1']);
});

test('close() discards a spare that was still being made, and nothing is made after', async () => {
  const h = harness(2, { makeMs: 50 });
  h.pool.fill();
  await sleep(10);
  await h.pool.close();
  assert.equal(h.pool.count, 0);
  assert.deepEqual(h.discarded, ['s1']);
  h.pool.fill();
  await sleep(80);
  assert.equal(h.made(), 1);
});

test('takeSoon: an empty pool that is making a spare hands it to one waiting start; a second start does not wait', async () => {
  const h = harness(1, { makeMs: 40 });
  h.pool.fill();
  await until(() => h.pool.count === 1, 'the first spare');
  assert.equal((await h.pool.takeSoon())?.spareId, 's1', 'a ready one at once');
  // s2 is being made now.
  const waiting = h.pool.takeSoon();
  assert.equal(await h.pool.takeSoon(), undefined, 'only one start waits for the spare being made');
  assert.equal((await waiting)?.spareId, 's2');
  await until(() => h.pool.count === 1, 'the pool made the next one');
  assert.equal(h.made(), 3);
  await h.pool.close();
  assert.deepEqual(h.discarded, ['s3']);
});

test('takeSoon: the waiting start gets undefined when making the spare fails, or the pool closes', async () => {
  const failing = harness(1, { failFirst: 1, makeMs: 20 });
  failing.pool.fill();
  assert.equal(await failing.pool.takeSoon(), undefined);
  await failing.pool.close();

  const closing = harness(1, { makeMs: 40 });
  closing.pool.fill();
  const waiting = closing.pool.takeSoon();
  await closing.pool.close();
  assert.equal(await waiting, undefined);
  assert.deepEqual(closing.discarded, ['s1'], 'the spare made while closing is removed');
});

test('takeSoon with nothing being made answers at once', async () => {
  const h = harness(0);
  assert.equal(await h.pool.takeSoon(), undefined);
  await h.pool.close();
});
