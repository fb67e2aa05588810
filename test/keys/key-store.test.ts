import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { parseClientKey, matchesVerifier, routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { configDir } from '@cloudtolocalllm/bridge/keys/config-dir';
import { KeyStore, KeyStoreError } from '@cloudtolocalllm/bridge/keys/key-store';

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
});
