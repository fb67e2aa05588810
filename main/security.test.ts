import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSafeExternalUrl, isTrustedSenderUrl } from './security.js';

test('only http(s) links without credentials may open in the system browser', () => {
  for (const ok of ['https://github.com/x', 'http://127.0.0.1:8080/docs']) assert.equal(isSafeExternalUrl(ok), true, ok);
  for (const bad of ['file:///etc/passwd', 'javascript:alert(1)', 'smb://host/share', 'https://user:pw@host/', 'not a url', 'ms-settings:privacy']) {
    assert.equal(isSafeExternalUrl(bad), false, bad);
  }
});

test('IPC is answered only for frames showing our own renderer files', () => {
  const dir = 'file:///opt/CloudToLocalLLM/resources/app.asar/dist/renderer/';
  assert.equal(isTrustedSenderUrl(`${dir}settings.html`, dir), true);
  assert.equal(isTrustedSenderUrl('https://evil.example/settings.html', dir), false);
  assert.equal(isTrustedSenderUrl(`${dir}../../evil.html`, dir), false);
  assert.equal(isTrustedSenderUrl('file:///tmp/settings.html', dir), false);
  assert.equal(isTrustedSenderUrl(undefined, dir), false);
});
