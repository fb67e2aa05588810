import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OutputTail, waitForHealth } from './health.js';

test('OutputTail keeps the last lines and tells when a phrase appears, even split across writes', async () => {
  const tail = new OutputTail(64);
  const seen = tail.seen('proxy listening');
  let resolved = false;
  void seen.then(() => (resolved = true));
  tail.write('starting\nstreaming prox');
  await new Promise((r) => setImmediate(r));
  assert.equal(resolved, false);
  tail.write('y listening on 8080\n');
  await seen;
  tail.write('x'.repeat(100) + '\nlast words\n');
  assert.deepEqual(tail.lines().at(-1), 'last words');
});

test('waitForHealth probes again as soon as the ready signal comes, not at its next poll', { timeout: 30_000 }, async () => {
  let status = 503;
  const answered: number[] = [];
  let firstProbe: () => void = () => {};
  const probed = new Promise<void>((r) => (firstProbe = r));
  const server = http.createServer((_req, res) => {
    answered.push(status);
    res.writeHead(status).end();
    firstProbe();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    let signal: () => void = () => {};
    const ready = new Promise<void>((r) => (signal = r));
    // Its next poll would come a quarter of an hour after the first: only the ready signal can
    // make it probe again before the test's timeout.
    const waiting = waitForHealth(`http://127.0.0.1:${port}/health`, { timeoutMs: 3_600_000, pauseMs: 3_600_000, ready });
    await probed;
    status = 200;
    signal();
    await waiting;
    assert.deepEqual(answered, [503, 200], 'one probe before the signal, one right after it');
  } finally {
    server.close();
  }
});

test('waitForHealth gives up with the last failure, or at once with the exit reason', async () => {
  await assert.rejects(waitForHealth('http://127.0.0.1:1/health', { timeoutMs: 300 }), /did not answer GET \/health with 200 within 0 s \(last attempt: connect ECONNREFUSED/);
  await assert.rejects(
    waitForHealth('http://127.0.0.1:1/health', { timeoutMs: 60_000, exited: Promise.resolve('the container exited during start (exit code 3)') }),
    /exit code 3/,
  );
});
