/** Where the desktop app keeps its tokens: the keychain entry's rules, and the fall back to memory. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  KEYCHAIN_SERVICE,
  KeychainTokenStore,
  MemoryTokenStore,
  openTokenStore,
  TokenStoreError,
} from '../../main/auth/token-store.js';
import type { TokenSet } from '../../main/auth/token-set.js';
import { FakeKeytar } from './keychain-fake.js';

const CLIENT = { issuer: 'http://127.0.0.1:4100', clientId: 'cloudtolocalllm-desktop' };
const ACCOUNT = 'http://127.0.0.1:4100 cloudtolocalllm-desktop';

function tokens(overrides: Partial<TokenSet> = {}): TokenSet {
  return {
    ...CLIENT,
    accessToken: 'access-SECRET-1',
    refreshToken: 'refresh-SECRET-1',
    idToken: 'id-SECRET-1',
    expiresAt: Date.now() + 600_000,
    subject: 'alice',
    scope: 'openid profile offline_access',
    ...overrides,
  };
}

describe('KeychainTokenStore', () => {
  test('keeps the TokenSet as JSON under service CloudToLocalLLM, account "<issuer> <clientId>"', async () => {
    const keytar = new FakeKeytar();
    const store = new KeychainTokenStore({ keytar, client: CLIENT });
    const saved = tokens();
    await store.save({ ...saved, extra: 'not a TokenSet field' } as TokenSet);
    const raw = keytar.entries.get(FakeKeytar.key(KEYCHAIN_SERVICE, ACCOUNT));
    assert.ok(raw);
    assert.deepEqual(JSON.parse(raw), saved);
    assert.deepEqual(await store.load(), saved);
    assert.deepEqual(await store.load(CLIENT), saved);
    assert.equal(await store.load({ ...CLIENT, clientId: 'other' }), undefined);
    await store.clear();
    assert.equal(keytar.entries.size, 0);
    assert.equal(await store.load(), undefined);
  });

  test('deletes an entry that is not a TokenSet of its account and reads it as no tokens', async () => {
    const corrupt = [
      'not json',
      'null',
      '[]',
      JSON.stringify({ ...tokens(), accessToken: '' }),
      JSON.stringify({ ...tokens(), expiresAt: 'tomorrow' }),
      JSON.stringify({ ...tokens(), refreshToken: 42 }),
      JSON.stringify({ ...tokens(), issuer: 'https://elsewhere.example' }),
    ];
    for (const value of corrupt) {
      const keytar = new FakeKeytar();
      keytar.entries.set(FakeKeytar.key(KEYCHAIN_SERVICE, ACCOUNT), value);
      const store = new KeychainTokenStore({ keytar, client: CLIENT });
      assert.equal(await store.load(), undefined, value);
      assert.equal(keytar.entries.size, 0, `${value} is deleted`);
    }
  });

  test('without a client, load() returns the newest stored sign-in and clear() forgets all of them', async () => {
    const keytar = new FakeKeytar();
    const store = new KeychainTokenStore({ keytar });
    const older = tokens({ expiresAt: Date.now() + 1_000 });
    const newer = tokens({ issuer: 'https://tenant.auth0.com/', accessToken: 'access-SECRET-2', expiresAt: Date.now() + 9_000 });
    await store.save(older);
    await store.save(newer);
    keytar.entries.set(FakeKeytar.key(KEYCHAIN_SERVICE, 'https://x.example y'), 'garbage');
    keytar.entries.set(FakeKeytar.key('SomeOtherApp', ACCOUNT), 'not ours');
    assert.deepEqual(await store.load(), newer);
    assert.equal(keytar.entries.has(FakeKeytar.key(KEYCHAIN_SERVICE, 'https://x.example y')), false, 'the corrupt entry is deleted');
    assert.deepEqual(await store.load(CLIENT), older);
    await store.clear();
    assert.deepEqual([...keytar.entries.keys()], [FakeKeytar.key('SomeOtherApp', ACCOUNT)]);
  });

  test('keychain failures become TokenStoreErrors that never carry a token', async () => {
    const keytar = new FakeKeytar('fail');
    keytar.failure = 'Cannot create an item in a locked collection';
    const store = new KeychainTokenStore({ keytar, client: CLIENT });
    await assert.rejects(store.save(tokens()), (err: unknown) => {
      assert.ok(err instanceof TokenStoreError);
      assert.equal(err.code, 'keychain-failed');
      assert.match(err.message, /locked collection/);
      assert.doesNotMatch(err.message, /SECRET/);
      return true;
    });
    keytar.mode = 'hang';
    const slow = new KeychainTokenStore({ keytar, client: CLIENT, operationTimeoutMs: 50 });
    await assert.rejects(slow.load(), (err: unknown) => err instanceof TokenStoreError && err.code === 'keychain-timeout');
  });
});

describe('MemoryTokenStore', () => {
  test('keeps copies, one sign-in per client', async () => {
    const store = new MemoryTokenStore();
    const saved = tokens();
    await store.save(saved);
    saved.accessToken = 'changed by the caller';
    assert.equal((await store.load(CLIENT))?.accessToken, 'access-SECRET-1');
    const loaded = await store.load();
    assert.ok(loaded);
    loaded.accessToken = 'changed again';
    assert.equal((await store.load())?.accessToken, 'access-SECRET-1');
    await store.clear({ ...CLIENT, issuer: 'https://other.example' });
    assert.ok(await store.load(CLIENT));
    await store.clear(CLIENT);
    assert.equal(await store.load(), undefined);
    assert.equal(store.kind, 'memory');
  });
});

describe('openTokenStore', () => {
  test('uses the keychain when it answers the probe, which only reads', async () => {
    const keytar = new FakeKeytar();
    const store = await openTokenStore({ keytar });
    assert.equal(store.kind, 'keychain');
    assert.match(store.detail, /stay signed in when CloudToLocalLLM restarts/);
    assert.deepEqual(keytar.calls, ['getPassword']);
    assert.equal(keytar.entries.size, 0);
  });

  test('falls back to memory, saying why and what to do, when the keychain fails', async () => {
    const store = await openTokenStore({ keytar: new FakeKeytar('fail') });
    assert.equal(store.kind, 'memory');
    assert.match(store.detail, /^No keychain answered \(Cannot autolaunch D-Bus without X11 \$DISPLAY\): you stay signed in only until CloudToLocalLLM quits\./);
    if (process.platform === 'linux') assert.match(store.detail, /Install and unlock a Secret Service \(GNOME Keyring or KWallet\)/);
  });

  test('falls back to memory after the probe timeout when the keychain never answers', async (t) => {
    // The probe's clock is mocked: it gives up exactly at its timeout, however busy the machine.
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let settled = false;
    const opening = openTokenStore({ keytar: new FakeKeytar('hang'), probeTimeoutMs: 200 }).finally(() => (settled = true));
    const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    await settle();
    t.mock.timers.tick(199);
    await settle();
    assert.equal(settled, false, 'still waiting 1 ms before the timeout');
    t.mock.timers.tick(1);
    const store = await opening;
    assert.equal(store.kind, 'memory');
    assert.match(store.detail, /No keychain answered \(no answer within 200 ms\)/);
  });
});
