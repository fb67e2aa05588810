import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeKeyScope, KEY_ID_HEADER, KEY_SCOPE_HEADER } from '@cloudtolocalllm/bridge/connection/client-key';
import type { Computer } from './bridge-links.js';
import { keyHeaders } from './key-access.js';

const computer = (name: string): Computer => ({ name }) as Computer;

test('the scope goes only to computers that did not make the key; its own computer judges by its own list', () => {
  const own = computer('alpha');
  const other = computer('bravo');
  const scope = { name: 'k', allow: [], machines: ['alpha', 'bravo'] };
  const access = { ok: true as const, id: 'AAAAAAAA', scope, holders: [own], pool: [own, other] };
  assert.deepEqual(keyHeaders(access, own), { [KEY_ID_HEADER]: 'AAAAAAAA' });
  const elsewhere = keyHeaders(access, other);
  assert.equal(elsewhere[KEY_ID_HEADER], 'AAAAAAAA');
  assert.deepEqual(decodeKeyScope(elsewhere[KEY_SCOPE_HEADER]!), { ok: true, value: scope });
  // A key from an older bridge has no scope to pass.
  assert.deepEqual(keyHeaders({ ok: true, id: 'AAAAAAAA', holders: [own], pool: [own] }, other), { [KEY_ID_HEADER]: 'AAAAAAAA' });
});
