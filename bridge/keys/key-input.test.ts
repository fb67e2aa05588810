import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyNameProblem, parseExpiry, parseModelList } from './key-input.js';

const NOW = Date.parse('2026-12-01T00:00:00Z');

test('names: letters, digits, space . _ -, 1 to 64, starting with a letter or digit', () => {
  for (const ok of ['phone', 'Open WebUI 2', 'a', 'x'.repeat(64), 'my_editor-1.0']) assert.equal(keyNameProblem(ok), undefined, ok);
  assert.match(keyNameProblem('')!, /needs a name/);
  assert.match(keyNameProblem('  ')!, /needs a name/);
  for (const bad of ['../x', '-x', 'x'.repeat(65), 'a\nb', 'é']) assert.match(keyNameProblem(bad)!, /is not usable/, bad);
});

test('model lists: comma-separated Ollama names; a wrong one is named', () => {
  assert.deepEqual(parseModelList(' llama3.2, qwen3:8b ,library/x:1b,'), ['llama3.2', 'qwen3:8b', 'library/x:1b']);
  assert.throws(() => parseModelList('llama3.2, bad name'), /"bad name" is not a model name/);
  assert.throws(() => parseModelList(' , '), /names no model/);
});

test('expiry: a duration from now, or a future date; anything else says what it takes', () => {
  assert.equal(parseExpiry('30d', NOW), NOW + 30 * 86_400_000);
  assert.equal(parseExpiry('12h', NOW), NOW + 12 * 3_600_000);
  assert.equal(parseExpiry('90m', NOW), NOW + 90 * 60_000);
  assert.equal(parseExpiry('2w', NOW), NOW + 14 * 86_400_000);
  assert.equal(parseExpiry('2027-01-31', NOW), Date.parse('2027-01-31'));
  assert.throws(() => parseExpiry('0d', NOW), /no time at all/);
  assert.throws(() => parseExpiry('2026-11-30', NOW), /is in the past/);
  assert.throws(() => parseExpiry('tomorrow', NOW), /not a duration \(30d, 12h, 90m, 2w\) nor a date \(2027-01-31\)/);
  assert.throws(() => parseExpiry('2027-13-45', NOW), /not a duration/);
});
