import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startEmbeddedIssuer, type EmbeddedIssuer } from '@cloudtolocalllm/server/issuer/embedded-issuer';
import { CookieJar } from 'tough-cookie';
import { AuthError } from '../main/auth/auth-error.js';
import { headlessSignIn, refreshHeadless } from './headless-login.js';

describe('headless sign-in', () => {
  let issuer: EmbeddedIssuer;
  before(async () => {
    issuer = await startEmbeddedIssuer({ audience: 'https://api.cloudtolocalllm.test' });
  });
  after(() => issuer.close());

  test('signs different users in with their own subject', async () => {
    const client = { issuer: issuer.issuer, clientId: issuer.desktopClientId, audience: issuer.audience };
    const [erin, frank] = await Promise.all([
      headlessSignIn({ ...client, username: 'erin' }),
      headlessSignIn({ ...client, username: 'frank.f@example.org' }),
    ]);
    assert.equal(erin.subject, 'erin');
    assert.equal(frank.subject, 'frank.f@example.org');
  });

  test('fails with login-rejected and the issuer\'s message when the user name is invalid', async () => {
    for (const username of ['has space', '', 'x'.repeat(65)]) {
      await assert.rejects(
        headlessSignIn({ issuer: issuer.issuer, clientId: issuer.desktopClientId, audience: issuer.audience, username }),
        (err: unknown) => {
          assert.ok(err instanceof AuthError);
          assert.equal(err.code, 'login-rejected', `${JSON.stringify(username)}: ${err.message}`);
          assert.match(err.message, /user name/i);
          return true;
        },
      );
    }
  });

  test('refreshHeadless rotates the refresh token', async () => {
    const client = { issuer: issuer.issuer, clientId: issuer.desktopClientId };
    const tokens = await headlessSignIn({ ...client, audience: issuer.audience, username: 'gina' });
    const next = await refreshHeadless(client, tokens);
    assert.notEqual(next.refreshToken, tokens.refreshToken);
    assert.equal(next.subject, 'gina');
  });
});

// What the sign-in flow needs of its cookie jar (tough-cookie's), as the hand-written jar it replaced did.
describe('CookieJar', () => {
  test('sends a cookie only below its path, longest path first', () => {
    const jar = new CookieJar();
    jar.setCookieSync('_session=s; path=/; httponly', 'http://127.0.0.1/auth');
    jar.setCookieSync('_interaction=i; path=/interaction/abc; samesite=lax', 'http://127.0.0.1/auth');
    assert.equal(jar.getCookieStringSync('http://127.0.0.1/interaction/abc/login'), '_interaction=i; _session=s');
    assert.equal(jar.getCookieStringSync('http://127.0.0.1/interaction/abcdef'), '_session=s');
    assert.equal(jar.getCookieStringSync('http://127.0.0.1/token'), '_session=s');
  });

  test('forgets a cookie the server expires', () => {
    const jar = new CookieJar();
    const url = 'http://127.0.0.1/';
    jar.setCookieSync('a=1; path=/', url);
    jar.setCookieSync('a=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT', url);
    assert.equal(jar.getCookieStringSync(url), '');
    jar.setCookieSync('b=2; path=/', url);
    jar.setCookieSync('b=; path=/; max-age=0', url);
    assert.equal(jar.getCookieStringSync(url), '');
  });
});
