import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryAdapterFactory } from './memory-store.js';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('entries live exactly as long as given, and consume marks them', async () => {
  const c = clock();
  const codes = memoryAdapterFactory({ now: c.now })('AuthorizationCode');
  await codes.upsert('c1', { accountId: 'alice' }, 60);
  assert.equal((await codes.find('c1'))?.accountId, 'alice');
  await codes.consume('c1');
  assert.equal((await codes.find('c1'))?.consumed, 1000);
  c.advance(59_999);
  assert.ok(await codes.find('c1'));
  c.advance(1);
  assert.equal(await codes.find('c1'), undefined, 'expired at 60 s');
  await codes.destroy('nope');
});

test('sessions by uid, and revoking a grant removes every token of it, even after short-lived ones', async () => {
  const c = clock();
  const factory = memoryAdapterFactory({ now: c.now });
  const sessions = factory('Session');
  await sessions.upsert('s1', { uid: 'u1', accountId: 'bob' }, 3600);
  assert.equal((await sessions.findByUid('u1'))?.accountId, 'bob');
  assert.equal(await sessions.findByUid('u2'), undefined);

  const refresh = factory('RefreshToken');
  const access = factory('AccessToken');
  await refresh.upsert('r1', { grantId: 'g1' }, 86_400);
  await access.upsert('a1', { grantId: 'g1' }, 600);
  c.advance(601_000); // the access token is gone; the grant's list must still know the refresh token
  assert.ok(await refresh.find('r1'));
  await access.revokeByGrantId('g1');
  assert.equal(await refresh.find('r1'), undefined);
});

test('stores do not share entries, and the bound drops expired entries first, then the oldest', async () => {
  const c = clock();
  const a = memoryAdapterFactory({ now: c.now })('Grant');
  const b = memoryAdapterFactory({ now: c.now })('Grant');
  await a.upsert('x', { accountId: 'a' }, 60);
  assert.equal(await b.find('x'), undefined);

  const small = memoryAdapterFactory({ now: c.now, maxEntries: 3 })('Grant');
  await small.upsert('short', {}, 1);
  await small.upsert('old', {}, 100);
  await small.upsert('mid', {}, 100);
  c.advance(2000);
  await small.upsert('new', {}, 100); // 4 > 3: the expired one goes, the rest stay
  assert.ok((await small.find('old')) && (await small.find('mid')) && (await small.find('new')));
  await small.upsert('newer', {}, 100); // nothing expired: the oldest goes
  assert.equal(await small.find('old'), undefined);
  assert.ok((await small.find('mid')) && (await small.find('newer')));
});
