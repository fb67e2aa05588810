import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClientKey, KEY_LENGTH, matchesVerifier, parseClientKey, parseKeySetLine, routeOf } from './client-key.js';

const route = routeOf('a'.repeat(64));

describe('client keys', () => {
  test('a new key parses back to its route and id and matches its verifier only', () => {
    const made = createClientKey(route);
    assert.equal(made.key.length, KEY_LENGTH);
    const parsed = parseClientKey(made.key);
    assert.ok(parsed.ok);
    assert.equal(parsed.route, route);
    assert.equal(parsed.id, made.id);
    assert.ok(matchesVerifier(parsed, made.verifier));
    assert.ok(!matchesVerifier(parsed, createClientKey(route).verifier));
    assert.ok(!made.verifier.includes(parsed.secret.toString('hex')));
  });

  test('routes differ per user and do not carry the user hash', () => {
    assert.notEqual(routeOf('a'.repeat(64)), routeOf('b'.repeat(64)));
    assert.ok(!Buffer.from(route, 'base64url').toString('hex').startsWith('aaaa'));
  });

  test('cut, extended, mistyped and foreign keys are told apart', () => {
    const { key } = createClientKey(route);
    const cut = parseClientKey(key.slice(0, -1));
    assert.ok(!cut.ok && cut.reason === 'key-truncated' && /83/.test(cut.message));
    const longer = parseClientKey(key + 'A');
    assert.ok(!longer.ok && longer.reason === 'key-truncated');
    const typo = parseClientKey(key.slice(0, 30) + (key[30] === 'x' ? 'y' : 'x') + key.slice(31));
    assert.ok(!typo.ok && typo.reason === 'key-checksum');
    const odd = parseClientKey(key.slice(0, 30) + '!' + key.slice(31));
    assert.ok(!odd.ok && odd.reason === 'key-malformed');
    for (const bad of [cut, typo, odd]) assert.ok(!bad.ok && !bad.message.includes(key.slice(5, 20)), 'no refusal echoes the key');
  });

  test('key-set lines are checked', () => {
    const { id, verifier } = createClientKey(route);
    assert.deepEqual(parseKeySetLine(JSON.stringify({ keys: [{ id, verifier, expiresAt: 5 }] })), { ok: true, value: { keys: [{ id, verifier, expiresAt: 5 }] } });
    assert.ok(!parseKeySetLine('{').ok);
    assert.ok(!parseKeySetLine('{"keys":[{"id":"x","verifier":"y"}]}').ok);
  });
});
