import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SETTINGS, validateSettings } from './settings.js';
import { SettingsStore } from './settings-store.js';

test('defaults are valid and tray-first, with no model management allowed', () => {
  const v = validateSettings(DEFAULT_SETTINGS);
  assert.equal(v.ok, true);
  assert.equal(DEFAULT_SETTINGS.startMinimized, true);
  assert.deepEqual(DEFAULT_SETTINGS.allowManagement, []);
  assert.equal(DEFAULT_SETTINGS.ollamaUrl, 'http://127.0.0.1:11434');
});

test('each bad field gets its own message', () => {
  const v = validateSettings({
    ...DEFAULT_SETTINGS,
    cloudServerUrl: 'http://cloud.example.com',
    ollamaUrl: 'ollama',
    startAtLogin: 'yes',
    allowManagement: ['pull', 'format'],
    logLevel: 'loud',
  });
  assert.equal(v.ok, false);
  if (v.ok) return;
  assert.match(v.errors.cloudServerUrl ?? '', /must use https:\/\//);
  assert.match(v.errors.ollamaUrl ?? '', /not a URL/);
  assert.match(v.errors.startAtLogin ?? '', /true or false/);
  assert.match(v.errors.allowManagement ?? '', /pull, push, create, copy, delete, blobs/);
  assert.match(v.errors.logLevel ?? '', /error, warn, info, debug/);
  assert.equal(v.errors.startMinimized, undefined);
});

test('URLs: https clouds, local http clouds, empty cloud (local stack), Ollama without a path', () => {
  const ok = (patch: object) => validateSettings({ ...DEFAULT_SETTINGS, ...patch }).ok;
  assert.ok(ok({ cloudServerUrl: 'https://cloud.example.com/' }));
  assert.ok(ok({ cloudServerUrl: 'http://127.0.0.1:8080' }));
  assert.ok(ok({ cloudServerUrl: '' }));
  assert.ok(!ok({ cloudServerUrl: 'ftp://cloud.example.com' }));
  assert.ok(!ok({ cloudServerUrl: 'https://user:pw@cloud.example.com' }));
  assert.ok(ok({ ollamaUrl: 'http://192.168.1.20:11434' }));
  assert.ok(!ok({ ollamaUrl: 'http://127.0.0.1:11434/api' }));
  assert.ok(!ok({ ollamaUrl: '' }));
  const v = validateSettings({ ...DEFAULT_SETTINGS, cloudServerUrl: ' https://cloud.example.com/ ', allowManagement: ['pull', 'delete', 'pull'] });
  assert.ok(v.ok);
  if (v.ok) {
    assert.equal(v.settings.cloudServerUrl, 'https://cloud.example.com');
    assert.deepEqual(v.settings.allowManagement, ['delete', 'pull']);
  }
});

test('the store persists valid settings atomically and refuses invalid ones without writing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'settings-'));
  const store = new SettingsStore(dir);
  assert.deepEqual((await store.load()).settings, DEFAULT_SETTINGS, 'no file: defaults');
  const saved = await store.save({ ...DEFAULT_SETTINGS, startAtLogin: true, allowManagement: ['pull'] });
  assert.ok(saved.ok);
  const again = new SettingsStore(dir);
  assert.equal((await again.load()).settings.startAtLogin, true);
  const refused = await store.save({ ...DEFAULT_SETTINGS, ollamaUrl: 'nope' });
  assert.equal(refused.ok, false);
  assert.equal(JSON.parse(await readFile(store.file, 'utf8')).ollamaUrl, DEFAULT_SETTINGS.ollamaUrl, 'the file is unchanged');
  assert.equal((await stat(store.file)).mode & 0o777, 0o600);
});

test('a corrupt or invalid file is kept aside, defaults are used, and the reason is reported', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'settings-'));
  const store = new SettingsStore(dir);
  await writeFile(store.file, '{ not json');
  const loaded = await store.load();
  assert.deepEqual(loaded.settings, DEFAULT_SETTINGS);
  assert.match(loaded.problem ?? '', /not valid JSON/);
  assert.equal(await readFile(`${store.file}.invalid`, 'utf8'), '{ not json');
  await writeFile(store.file, JSON.stringify({ ollamaUrl: 42 }));
  assert.match((await store.load()).problem ?? '', /ollamaUrl/);
});

test('settings from an older version gain the new fields\' defaults', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'settings-'));
  const store = new SettingsStore(dir);
  await writeFile(store.file, JSON.stringify({ cloudServerUrl: 'https://c.example.com', ollamaUrl: 'http://127.0.0.1:11434' }));
  const loaded = await store.load();
  assert.equal(loaded.problem, undefined);
  assert.equal(loaded.settings.cloudServerUrl, 'https://c.example.com');
  assert.equal(loaded.settings.startMinimized, true);
});
