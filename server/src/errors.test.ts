import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STATUS_CODES } from 'node:http';
import { AUTH_REASONS } from '@cloudtolocalllm/api-contract';
import { ERROR_STATUS, ServerError, authCode } from './errors.js';

test('every refusal code has an error status of HTTP with its reason phrase, and every credential reason a code', () => {
  for (const [code, status] of Object.entries(ERROR_STATUS)) {
    assert.ok(status >= 400 && status <= 599 && STATUS_CODES[status], `${code}: ${status}`);
  }
  for (const reason of AUTH_REASONS) assert.ok(authCode(reason) in ERROR_STATUS, reason);
});

test("a ServerError's status is its code's, whoever throws it", () => {
  assert.equal(new ServerError('no-bridge', 'x').status, 503);
  assert.equal(new ServerError('auth-wrong-user', 'x').status, 403);
  assert.equal(new ServerError('update-required', 'x').status, 426);
});
