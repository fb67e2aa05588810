import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redact, redactArgs } from './redact.js';

const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ';

test('bearer tokens, JWTs and token fields never reach the log', () => {
  const line = redact(`GET /x Authorization: Bearer abc.def-ghi token=${jwt} {"refresh_token":"r3fr3sh","access_token": "${jwt}"} code=xyz&state=ok`);
  assert.ok(!line.includes('abc.def-ghi'));
  assert.ok(!line.includes(jwt));
  assert.ok(!line.includes('r3fr3sh'));
  assert.ok(!line.includes('xyz'));
  assert.match(line, /state=ok/, 'harmless text stays');
});

test('objects and errors are redacted too', () => {
  const [o, e] = redactArgs([{ tokens: { accessToken: 'secret-value', user: 'alice' } }, new Error(`refused ${jwt}`)]) as [{ tokens: { accessToken: string; user: string } }, string];
  assert.equal(o.tokens.accessToken, '[redacted]');
  assert.equal(o.tokens.user, 'alice');
  assert.ok(!e.includes(jwt));
});

test('client keys never reach the log, whole, cut short or inside a JSON answer', async () => {
  const { createClientKey } = await import('@cloudtolocalllm/bridge/connection/client-key');
  const { key } = createClientKey('r'.repeat(22));
  const secretPart = key.slice(30, 70);
  const [line, obj] = redactArgs([`created ${key} and ${key.slice(0, 40)}`, { ok: true, secret: key, name: 'phone' }]) as [string, { secret: string; name: string }];
  assert.ok(!line.includes(secretPart), line);
  assert.ok(!line.includes(key.slice(5, 40)), 'the cut key too');
  assert.equal(obj.secret, 'ctll_[redacted]');
  assert.equal(obj.name, 'phone', 'harmless fields stay');
});
