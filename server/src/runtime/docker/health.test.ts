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

test('waitForHealth answers as soon as the server is up, woken by the ready signal', async () => {
  const server = http.createServer((_req, res) => res.end('ok'));
  // A port that refuses until the server listens on it.
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  let signal: () => void = () => {};
  const ready = new Promise<void>((r) => (signal = r));
  const waiting = waitForHealth(`http://127.0.0.1:${port}/health`, { timeoutMs: 10_000, ready });
  await new Promise((r) => setTimeout(r, 300));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  signal();
  await waiting;
  server.close();
});

test('waitForHealth gives up with the last failure, or at once with the exit reason', async () => {
  await assert.rejects(waitForHealth('http://127.0.0.1:1/health', { timeoutMs: 300 }), /did not answer GET \/health with 200 within 0 s \(last attempt: connect ECONNREFUSED/);
  await assert.rejects(
    waitForHealth('http://127.0.0.1:1/health', { timeoutMs: 60_000, exited: Promise.resolve('the container exited during start (exit code 3)') }),
    /exit code 3/,
  );
});
