import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { AcceptedKeys } from './accepted-keys.js';

const alice = 'a'.repeat(64) as UserHash;
const bob = 'b'.repeat(64) as UserHash;

test('a key the proxy accepted is known for the time it was given, then forgotten', () => {
  const keys = new AcceptedKeys(1000);
  assert.equal(keys.userOf('ctll_k1_one', 0), undefined, 'never accepted');
  keys.accepted('ctll_k1_one', alice, 0);
  assert.equal(keys.userOf('ctll_k1_one', 999), alice);
  assert.equal(keys.userOf('ctll_k1_two', 999), undefined, 'another key is not known by it');
  assert.equal(keys.userOf('ctll_k1_one', 1000), undefined, 'expired');
  keys.accepted('ctll_k1_one', alice, 2000);
  assert.equal(keys.userOf('ctll_k1_one', 2500), alice, 'accepted again: known again');
});

test('a refusal forgets the key at once; a full memory forgets the oldest', () => {
  const keys = new AcceptedKeys(60_000, 2);
  keys.accepted('k-a', alice, 0);
  keys.refused('k-a');
  assert.equal(keys.userOf('k-a', 1), undefined);
  keys.accepted('k-1', alice, 0);
  keys.accepted('k-2', bob, 1);
  keys.accepted('k-1', alice, 2); // accepted again: now the newest
  keys.accepted('k-3', bob, 3);
  assert.equal(keys.userOf('k-2', 4), undefined, 'the oldest went');
  assert.equal(keys.userOf('k-1', 4), alice);
  assert.equal(keys.userOf('k-3', 4), bob);
});
