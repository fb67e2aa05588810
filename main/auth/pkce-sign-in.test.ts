// The desktop OAuth client against the real embedded issuer (oidc-provider), all on 127.0.0.1.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

import { startEmbeddedIssuer, type EmbeddedIssuer } from '@cloudtolocalllm/server/issuer/embedded-issuer';
import { AuthError } from './auth-error.js';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { refresh, signIn, signOut } from './pkce-sign-in.js';

const AUDIENCE = 'https://api.cloudtolocalllm.test';

function isAuthError(code: string, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AuthError, `expected an AuthError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

describe('PKCE sign-in against the embedded issuer', () => {
  let issuer: EmbeddedIssuer;
  let client: { issuer: string; clientId: string; audience: string };
  before(async () => {
    issuer = await startEmbeddedIssuer({ audience: AUDIENCE });
    client = { issuer: issuer.issuer, clientId: issuer.desktopClientId, audience: issuer.audience };
  });
  after(() => issuer.close());

  test('PKCE sign-in as an HTTP client returns an RS256 JWT for the API whose sub is the user name', async () => {
    const tokens = await headlessSignIn({ ...client, username: 'alice@example.com' });
    assert.equal(decodeProtectedHeader(tokens.accessToken).alg, 'RS256');
    const { payload } = await jwtVerify(tokens.accessToken, createRemoteJWKSet(new URL(issuer.jwksUri)), {
      issuer: issuer.issuer,
      audience: AUDIENCE,
      algorithms: ['RS256'],
    });
    assert.equal(payload.sub, 'alice@example.com');
    assert.equal(tokens.subject, 'alice@example.com');
    assert.equal(tokens.issuer, issuer.issuer);
    assert.equal(tokens.clientId, issuer.desktopClientId);
    assert.ok(tokens.refreshToken, 'a refresh token is issued');
    assert.ok(tokens.idToken);
    assert.ok(Math.abs(tokens.expiresAt - (Date.now() + 600_000)) < 5_000, 'expiresAt follows the 600 s default');
  });

  test('sends PKCE S256, state, nonce, audience and resource to the authorization endpoint', async () => {
    let seen: URL | undefined;
    await assert.rejects(
      signIn({
        ...client,
        openBrowser: (url) => {
          seen = new URL(url);
          throw new Error('no browser here');
        },
      }),
      isAuthError('browser-failed', /no browser here/),
    );
    assert.ok(seen);
    const params = seen.searchParams;
    assert.equal(seen.origin + seen.pathname, `${issuer.issuer}/auth`);
    assert.equal(params.get('client_id'), issuer.desktopClientId);
    assert.equal(params.get('response_type'), 'code');
    assert.equal(params.get('code_challenge_method'), 'S256');
    assert.match(params.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.ok(params.get('state'));
    assert.ok(params.get('nonce'));
    assert.equal(params.get('audience'), AUDIENCE);
    assert.equal(params.get('resource'), AUDIENCE);
    assert.equal(params.get('scope'), 'openid profile offline_access');
    assert.match(params.get('redirect_uri') ?? '', /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
  });

  test('detects a state mismatch at the loopback redirect', async () => {
    await assert.rejects(
      signIn({
        ...client,
        openBrowser: async (url) => {
          const redirectUri = new URL(url).searchParams.get('redirect_uri');
          await fetch(`${redirectUri}?code=stolen&state=not-the-one-sent&iss=${encodeURIComponent(issuer.issuer)}`);
        },
      }),
      isAuthError('state-mismatch'),
    );
  });

  test('reports access-denied when the issuer returns access_denied', async () => {
    await assert.rejects(
      signIn({
        ...client,
        openBrowser: async (url) => {
          const params = new URL(url).searchParams;
          await fetch(`${params.get('redirect_uri')}?error=access_denied&state=${params.get('state')}`);
        },
      }),
      isAuthError('access-denied'),
    );
  });

  test('refuses to exchange a code the issuer never issued', async () => {
    await assert.rejects(
      signIn({
        ...client,
        openBrowser: async (url) => {
          const params = new URL(url).searchParams;
          const iss = encodeURIComponent(issuer.issuer);
          await fetch(`${params.get('redirect_uri')}?code=forged&state=${params.get('state')}&iss=${iss}`);
        },
      }),
      (err: unknown) => isAuthError('token-exchange-failed')(err) && (err as AuthError).oauthError === 'invalid_grant',
    );
  });

  test('times out when the browser never comes back', async () => {
    await assert.rejects(signIn({ ...client, timeoutMs: 200, openBrowser: () => {} }), isAuthError('timeout'));
  });

  test('refresh returns a new access token and a new refresh token; the old refresh token is then refused', async () => {
    const first = await headlessSignIn({ ...client, username: 'bob' });
    const second = await refresh(first);
    assert.ok(second.refreshToken);
    assert.notEqual(second.refreshToken, first.refreshToken);
    assert.notEqual(second.accessToken, first.accessToken);
    assert.equal(second.subject, 'bob');
    const { payload } = await jwtVerify(second.accessToken, createRemoteJWKSet(new URL(issuer.jwksUri)), {
      issuer: issuer.issuer,
      audience: AUDIENCE,
    });
    assert.equal(payload.sub, 'bob');

    await assert.rejects(refresh(first), (err: unknown) => isAuthError('refresh-failed')(err) && (err as AuthError).oauthError === 'invalid_grant');
  });

  test('signOut revokes the refresh token: refreshing afterwards fails', async () => {
    const tokens = await headlessSignIn({ ...client, username: 'carol' });
    assert.deepEqual(await signOut(tokens), { revoked: true });
    await assert.rejects(refresh(tokens), isAuthError('refresh-failed'));
  });

  test('refresh without a refresh token says so', async () => {
    const tokens = await headlessSignIn({ ...client, username: 'dave' });
    const { refreshToken: _dropped, ...withoutRefresh } = tokens;
    await assert.rejects(refresh(withoutRefresh), isAuthError('no-refresh-token'));
  });
});

describe('issuer checks', () => {
  test('refuses a plain-http issuer that is not on the loopback interface', async () => {
    await assert.rejects(
      signIn({ issuer: 'http://issuer.example', clientId: 'x', audience: AUDIENCE, openBrowser: () => {} }),
      isAuthError('insecure-issuer'),
    );
  });

  test('reports an issuer that does not answer as issuer-unreachable', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await assert.rejects(
      signIn({ issuer: `http://127.0.0.1:${port}`, clientId: 'x', audience: AUDIENCE, openBrowser: () => {} }),
      isAuthError('issuer-unreachable'),
    );
  });
});
