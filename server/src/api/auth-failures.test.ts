import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryAuditLog } from '../audit.js';
import { AuthFailureLimiter } from './auth-failures.js';

test('isBlocked says what blocked() would, and counts nothing in the audit line', () => {
  const audit = new MemoryAuditLog();
  const limiter = new AuthFailureLimiter({ limit: 2, windowMs: 60_000 }, audit);
  assert.equal(limiter.isBlocked('192.0.2.1', 0), false, 'no failure yet');
  limiter.failed('192.0.2.1', 'invalid-signature', 'ollama', 0);
  assert.equal(limiter.isBlocked('192.0.2.1', 1), false, 'under the limit');
  limiter.failed('192.0.2.1', 'invalid-signature', 'ollama', 2);
  assert.equal(limiter.isBlocked('192.0.2.1', 3), true);
  assert.equal(limiter.isBlocked('192.0.2.1', 4), true, 'asking again changes nothing');
  assert.equal(limiter.isBlocked('198.51.100.7', 4), false, 'another address');
  assert.ok(limiter.blocked('192.0.2.1', 'ollama', 5) !== undefined);
  assert.equal(limiter.isBlocked('192.0.2.1', 60_000), false, 'the window ended');
  limiter.close();
  const line = audit.entries.find((e) => e['action'] === 'auth.failure');
  assert.equal(line?.['limited'], 1, 'only the one blocked() call counted as a refusal while limited');
});
