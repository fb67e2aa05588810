import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { autostartDir, desktopEntry, LinuxAutostart, quoteExecArg } from './linux-autostart.js';

test('enable writes an XDG autostart entry, disable removes it, and the state reads back true', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'autostart-'));
  const a = new LinuxAutostart(dir);
  assert.equal(await a.isEnabled(), false);
  await a.enable('/opt/CloudToLocalLLM/cloudtolocalllm');
  assert.equal(await a.isEnabled(), true);
  const text = await readFile(a.file, 'utf8');
  assert.match(text, /^\[Desktop Entry\]$/m);
  assert.match(text, /^Type=Application$/m);
  assert.match(text, /^Exec=\/opt\/CloudToLocalLLM\/cloudtolocalllm --hidden$/m);
  await a.disable();
  assert.equal(await a.isEnabled(), false);
  await a.disable();
});

test('an entry the user disabled in their desktop settings reads as off', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'autostart-'));
  const a = new LinuxAutostart(dir);
  await writeFile(a.file, desktopEntry('/x') + 'Hidden=true\n');
  assert.equal(await a.isEnabled(), false);
});

test('Exec arguments are quoted as the spec requires', () => {
  assert.equal(quoteExecArg('/usr/bin/app'), '/usr/bin/app');
  assert.equal(quoteExecArg('/home/me/My Apps/app'), '"/home/me/My Apps/app"');
  assert.equal(quoteExecArg('100%'), '100%%');
  assert.equal(quoteExecArg('a"b$c'), '"a\\"b\\$c"');
  assert.equal(
    desktopEntry('/home/me/Apps/CloudToLocalLLM.AppImage', ['--hidden']).split('\n').find((l) => l.startsWith('Exec=')),
    'Exec=/home/me/Apps/CloudToLocalLLM.AppImage --hidden',
  );
});

test('the autostart folder follows XDG_CONFIG_HOME, ignoring a relative one', () => {
  assert.equal(autostartDir({ XDG_CONFIG_HOME: '/cfg' }), '/cfg/autostart');
  assert.match(autostartDir({ XDG_CONFIG_HOME: 'relative' }), /\.config\/autostart$/);
});
