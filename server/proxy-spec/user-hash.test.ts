import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { isUserHash, userHash, type UserHash } from './user-hash.js';

test('userHash is SHA-256 of the user id, 64 lowercase hex digits, and says nothing of the id', () => {
  const hash = userHash('auth0|alice');
  assert.equal(hash, createHash('sha256').update('auth0|alice').digest('hex'));
  assert.match(hash, /^[0-9a-f]{64}$/);
  assert.ok(isUserHash(hash));
  assert.ok(!isUserHash('auth0|alice'));
  assert.ok(!hash.includes('alice'));
});

// The two kinds of user key cannot mix: `npm run typecheck` fails if either line below compiles
// (an unused @ts-expect-error is an error), so the brand is tested where it acts, by the compiler.
test('a raw user id is not a UserHash, and a UserHash is not a raw user id (typecheck)', () => {
  // @ts-expect-error a raw id where a hash is expected
  const hashFromId: UserHash = 'auth0|alice';
  // @ts-expect-error a hash where a raw id is expected: hashing a hash again
  const twice = userHash(userHash('auth0|alice'));
  assert.ok(!isUserHash(hashFromId));
  assert.ok(isUserHash(twice));
});
