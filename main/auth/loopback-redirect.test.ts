import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AuthError } from './auth-error.js';
import { startLoopbackRedirect } from './loopback-redirect.js';

function isAuthError(code: string, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AuthError, `expected an AuthError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  };
}

test('listens on 127.0.0.1 on a random port with path /callback', async () => {
  const a = await startLoopbackRedirect();
  const b = await startLoopbackRedirect();
  try {
    assert.match(a.redirectUri, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    assert.notEqual(new URL(a.redirectUri).port, new URL(b.redirectUri).port);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('delivers the callback URL once, tells the browser to close the window, then closes', async () => {
  const redirect = await startLoopbackRedirect({ expectedState: 'abc' });
  const res = await fetch(`${redirect.redirectUri}?code=c0de&state=abc&iss=http%3A%2F%2F127.0.0.1`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/html/);
  assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  assert.match(await res.text(), /You can close this window/);
  const url = await redirect.callback;
  assert.equal(url.searchParams.get('code'), 'c0de');
  assert.equal(url.origin + url.pathname, redirect.redirectUri);
  await assert.rejects(fetch(`${redirect.redirectUri}?code=again&state=abc`), 'the receiver stops listening after one response');
});

test('answers 404 for other paths and keeps waiting', async () => {
  const redirect = await startLoopbackRedirect({ expectedState: 's' });
  const origin = new URL(redirect.redirectUri).origin;
  for (const path of ['/favicon.ico', '/', '/callback/extra', '/CALLBACK']) {
    const res = await fetch(`${origin}${path}?code=x&state=s`);
    assert.equal(res.status, 404, path);
  }
  const post = await fetch(`${redirect.redirectUri}?code=x&state=s`, { method: 'POST' });
  assert.equal(post.status, 405);
  await fetch(`${redirect.redirectUri}?code=real&state=s`);
  assert.equal((await redirect.callback).searchParams.get('code'), 'real');
});

test('times out with a clear error and stops listening', async () => {
  const redirect = await startLoopbackRedirect({ timeoutMs: 150 });
  await assert.rejects(redirect.callback, isAuthError('timeout', /No sign-in response arrived/));
  await assert.rejects(fetch(`${redirect.redirectUri}?code=late`));
});

test('refuses a response carrying another state and shows an error page', async () => {
  const redirect = await startLoopbackRedirect({ expectedState: 'expected' });
  const res = await fetch(`${redirect.redirectUri}?code=c&state=forged`);
  assert.equal(res.status, 400);
  assert.match(await res.text(), /state mismatch/);
  await assert.rejects(redirect.callback, isAuthError('state-mismatch'));
});

test('turns an error response into access-denied or authorization-error', async () => {
  const denied = await startLoopbackRedirect({ expectedState: 's' });
  const res = await fetch(`${denied.redirectUri}?error=access_denied&error_description=nope&state=s`);
  assert.equal(res.status, 400);
  await assert.rejects(denied.callback, (err: unknown) => {
    assert.ok(err instanceof AuthError);
    assert.equal(err.code, 'access-denied');
    assert.equal(err.oauthError, 'access_denied');
    assert.match(err.message, /nope/);
    return true;
  });

  const other = await startLoopbackRedirect({ expectedState: 's' });
  await fetch(`${other.redirectUri}?error=server_error&state=s`);
  await assert.rejects(other.callback, isAuthError('authorization-error'));

  const empty = await startLoopbackRedirect({ expectedState: 's' });
  await fetch(`${empty.redirectUri}?state=s`);
  await assert.rejects(empty.callback, isAuthError('authorization-error', /neither a code nor an error/));
});

test('is cancelled by its abort signal and by close()', async () => {
  const controller = new AbortController();
  const aborted = await startLoopbackRedirect({ signal: controller.signal });
  controller.abort();
  await assert.rejects(aborted.callback, isAuthError('cancelled'));

  const closed = await startLoopbackRedirect();
  await closed.close();
  await assert.rejects(closed.callback, isAuthError('cancelled'));
  await assert.rejects(fetch(`${closed.redirectUri}?code=x`));
});
