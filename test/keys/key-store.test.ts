import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { parseClientKey, matchesVerifier, routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { configDir } from '@cloudtolocalllm/bridge/keys/config-dir';
import { KeyStore, KeyStoreError, withLock } from '@cloudtolocalllm/bridge/keys/key-store';

describe('the key store', () => {
  test('a sign-in records the user hash the cloud computes, and keys are made for it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctll-store-'));
    try {
      const store = new KeyStore(dir);
      assert.throws(() => store.create({ name: 'x' }), (e: Error) => e instanceof KeyStoreError && /sign in first/.test(e.message));
      const account = store.recordSubject('auth0|alice');
      assert.equal(account.userHash, userHash('auth0|alice'));
      const { key, definition } = store.create({ name: 'laptop', models: ['llama3.2'] });
      const parsed = parseClientKey(key);
      assert.ok(parsed.ok);
      assert.equal(parsed.route, routeOf(userHash('auth0|alice')));
      assert.ok(matchesVerifier(parsed, definition.verifier));
      assert.throws(() => store.create({ name: 'laptop' }), /exists already/);
      assert.throws(() => store.create({ name: '../x' }), /not usable/);
      assert.equal(store.revoke(definition.id)?.name, 'laptop');
      assert.equal(store.revoke('laptop'), undefined);
      assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');
      writeFileSync(join(dir, 'keys.json'), '{');
      assert.throws(() => store.keys(), /keys.json is not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the configuration directory: CTLL_CONFIG_DIR, else the desktop\'s user data directory', () => {
    assert.equal(configDir({ CTLL_CONFIG_DIR: '/x/y' }, 'linux', '/home/a'), '/x/y');
    assert.equal(configDir({}, 'linux', '/home/a'), '/home/a/.config/CloudToLocalLLM');
    assert.equal(configDir({ XDG_CONFIG_HOME: '/c' }, 'linux', '/home/a'), '/c/CloudToLocalLLM');
    assert.equal(configDir({}, 'darwin', '/Users/a'), '/Users/a/Library/Application Support/CloudToLocalLLM');
  });

  test('writers at the same instant: every change lands (four processes making 50 keys each)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctll-store-race-'));
    try {
      new KeyStore(dir).recordSubject('auth0|race');
      // Each process makes its keys as fast as it can, so their read-modify-writes overlap: without
      // the lock some keys.json writes undo others (four runs without it left 87, 98, 127 and 194 of the 200 keys).
      const script = `
        const { KeyStore } = await import('@cloudtolocalllm/bridge/keys/key-store');
        const [dir, who] = process.argv.slice(1);
        const store = new KeyStore(dir);
        for (let i = 0; i < 50; i++) store.create({ name: who + '-' + i });`;
      await Promise.all(
        ['a', 'b', 'c', 'd'].map((who) =>
          promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir, who], { timeout: 120_000 }),
        ),
      );
      const names = new KeyStore(dir).keys().map((k) => k.name);
      assert.equal(names.length, 200, `only ${names.length} of 200 keys are in keys.json`);
      assert.equal(new Set(names).size, 200);
      assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.lock') || f.endsWith('.tmp')), [], 'a lock or temp file was left');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a lock left by a writer that died is taken over; one a live writer holds is waited for', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctll-store-lock-'));
    try {
      const lock = join(dir, 'keys.json.lock');
      // pid 2^22 + 1 is above Linux's pid_max default: nobody runs it. Its lock is from 2 s ago.
      writeFileSync(lock, `${2 ** 22 + 1} ${Date.now() - 2_000}`);
      const past = new Date(Date.now() - 2_000);
      utimesSync(lock, past, past);
      assert.equal(withLock(lock, () => 'ran'), 'ran');
      assert.deepEqual(readdirSync(dir), [], 'the lock was not released');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
