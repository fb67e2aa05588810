/** The words and numbers the windows show, computed without a browser. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  describeAccount,
  describeBridge,
  describeOllama,
  describeOllamaTest,
  formatBytes,
  formatCount,
  formatDuration,
  formatSince,
} from '../../renderer/lib/format.js';

test('bytes read in binary units with one decimal below ten', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(10 * 1024 * 1024), '10 MiB');
  assert.equal(formatBytes(312.4 * 1024 * 1024), '312 MiB');
  assert.equal(formatBytes(5 * 1024 ** 3), '5 GiB');
  assert.equal(formatBytes(-1), '—');
  assert.equal(formatBytes(Number.NaN), '—');
});

test('counts and durations', () => {
  assert.equal(formatCount(1234567), '1,234,567');
  assert.equal(formatDuration(42_000), '42 s');
  assert.equal(formatDuration(125_000), '2 min');
  assert.equal(formatDuration(7_500_000), '2 h 5 min');
  assert.equal(formatDuration(3 * 86_400_000), '3 days');
  assert.equal(formatSince(undefined, Date.now()), '—');
  assert.match(formatSince(Date.now() - 61_000, Date.now()), /\(for 1 min\)$/);
});

test('the Ollama test reads "Ollama <version>, N models", or the error as given', () => {
  assert.equal(describeOllamaTest({ ok: true, version: '0.12.3', modelCount: 3, url: 'u' }), 'Ollama 0.12.3, 3 models');
  assert.equal(describeOllamaTest({ ok: true, version: '0.12.3', modelCount: 1, url: 'u' }), 'Ollama 0.12.3, 1 model');
  assert.equal(describeOllamaTest({ ok: false, error: 'connect ECONNREFUSED 127.0.0.1:11434', url: 'u' }), 'connect ECONNREFUSED 127.0.0.1:11434');
});

test('status phrases', () => {
  assert.equal(describeAccount({ signedIn: false }), 'Not signed in');
  assert.equal(describeAccount({ signedIn: true, name: 'Ada' }), 'Signed in as Ada');
  assert.equal(describeAccount({ signedIn: true, name: 'Ada', issuer: 'https://auth.example.com' }), 'Signed in as Ada (https://auth.example.com)');
  assert.equal(describeBridge({ state: 'connected' }), 'connected');
  assert.equal(describeBridge({ state: 'reconnecting', reason: 'timeout', retryInMs: 2000 }), 'reconnecting — timeout — retrying in 2 s');
  assert.equal(describeOllama({ reachable: undefined }), 'Not checked yet');
  assert.equal(describeOllama({ reachable: true }), 'Reachable');
  assert.equal(describeOllama({ reachable: false, detail: 'refused' }), 'Not reachable: refused');
});
