import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

import { startEmbeddedIssuer, type EmbeddedIssuer } from './embedded-issuer.js';

const AUDIENCE = 'https://api.cloudtolocalllm.test';
const DESKTOP = 'cloudtolocalllm-desktop';

/** A browser reduced to what the protocol needs: manual redirects and cookies by name. */
class Browser {
  readonly cookies = new Map<string, string>();

  async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';')[0] ?? '';
      const eq = pair.indexOf('=');
      this.cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return res;
  }
}

function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizationUrl(issuer: EmbeddedIssuer, params: Record<string, string | undefined>): URL {
  const url = new URL('/auth', issuer.issuer);
  const all: Record<string, string | undefined> = {
    client_id: DESKTOP,
    response_type: 'code',
    scope: 'openid profile',
    state: 'st4te',
    redirect_uri: 'http://127.0.0.1:53682/callback',
    ...params,
  };
  for (const [key, value] of Object.entries(all)) if (value !== undefined) url.searchParams.set(key, value);
  return url;
}

function form(body: Record<string, string>): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body),
  };
}

/** Runs the browser part of the code flow up to the redirect back to the client. */
async function authorize(
  issuer: EmbeddedIssuer,
  options: { username: string; redirectUri?: string; resource?: string; browser?: Browser },
): Promise<{ callback: URL; verifier: string; redirectUri: string; sawLoginForm: boolean }> {
  const browser = options.browser ?? new Browser();
  const { verifier, challenge } = pkce();
  const redirectUri = options.redirectUri ?? 'http://127.0.0.1:53682/callback';
  let res = await browser.fetch(
    authorizationUrl(issuer, {
      redirect_uri: redirectUri,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: options.resource,
    }),
  );
  let sawLoginForm = false;
  for (let hop = 0; hop < 10; hop++) {
    assert.equal(res.status, 303, `hop ${hop}: expected a redirect, got ${res.status}: ${await res.clone().text()}`);
    const location = new URL(res.headers.get('location') ?? '', issuer.issuer);
    if (location.href.startsWith(redirectUri)) return { callback: location, verifier, redirectUri, sawLoginForm };
    res = await browser.fetch(location);
    if (res.status === 200) {
      sawLoginForm = true;
      const action = /action="([^"]+)"/.exec(await res.text())?.[1];
      assert.ok(action, 'login page has a form');
      res = await browser.fetch(new URL(action, issuer.issuer), form({ username: options.username, action: 'sign-in' }));
    }
  }
  throw new Error('too many redirects');
}

async function tokenRequest(issuer: EmbeddedIssuer, body: Record<string, string>): Promise<{ status: number; json: Record<string, string> }> {
  const res = await fetch(new URL('/token', issuer.issuer), form({ client_id: DESKTOP, ...body }));
  return { status: res.status, json: (await res.json()) as Record<string, string> };
}

async function signIn(issuer: EmbeddedIssuer, username: string, resource?: string): Promise<Record<string, string>> {
  const { callback, verifier, redirectUri } = await authorize(issuer, { username, ...(resource ? { resource } : {}) });
  const code = callback.searchParams.get('code');
  assert.ok(code, `callback carries a code: ${callback.href}`);
  const { status, json } = await tokenRequest(issuer, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
  });
  assert.equal(status, 200, JSON.stringify(json));
  return json;
}

describe('embedded issuer', () => {
  let issuer: EmbeddedIssuer;
  before(async () => {
    issuer = await startEmbeddedIssuer({ audience: AUDIENCE, accessTokenTtlSec: 300 });
  });
  after(() => issuer.close());

  test('publishes discovery metadata for a PKCE code flow with revocation', async () => {
    const res = await fetch(new URL('/.well-known/openid-configuration', issuer.issuer));
    assert.equal(res.status, 200);
    const meta = (await res.json()) as Record<string, unknown>;
    assert.match(issuer.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(meta['issuer'], issuer.issuer);
    assert.equal(meta['jwks_uri'], issuer.jwksUri);
    assert.deepEqual(meta['code_challenge_methods_supported'], ['S256']);
    assert.deepEqual(meta['response_types_supported'], ['code']);
    assert.deepEqual(meta['token_endpoint_auth_methods_supported'], ['none']);
    assert.deepEqual(meta['grant_types_supported'], ['authorization_code', 'refresh_token']);
    assert.equal(meta['revocation_endpoint'], `${issuer.issuer}/token/revocation`);
    const jwks = (await (await fetch(issuer.jwksUri)).json()) as { keys: Array<Record<string, unknown>> };
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]?.['kty'], 'RSA');
    assert.equal(jwks.keys[0]?.['d'], undefined, 'the JWKS must not publish the private key');
    assert.equal(issuer.desktopClientId, DESKTOP);
    assert.equal(issuer.webClientId, 'cloudtolocalllm-web');
  });

  test('refuses an authorization request without a PKCE code_challenge', async () => {
    const res = await fetch(authorizationUrl(issuer, {}), { redirect: 'manual' });
    assert.equal(res.status, 303);
    const location = new URL(res.headers.get('location') ?? '');
    assert.equal(location.origin + location.pathname, 'http://127.0.0.1:53682/callback');
    assert.equal(location.searchParams.get('error'), 'invalid_request');
    assert.match(location.searchParams.get('error_description') ?? '', /PKCE/);
    assert.equal(location.searchParams.get('code'), null);
  });

  test('refuses the plain PKCE method', async () => {
    const verifier = randomBytes(32).toString('base64url');
    const res = await fetch(authorizationUrl(issuer, { code_challenge: verifier, code_challenge_method: 'plain' }), {
      redirect: 'manual',
    });
    const location = new URL(res.headers.get('location') ?? '');
    assert.equal(location.searchParams.get('error'), 'invalid_request');
    assert.match(location.searchParams.get('error_description') ?? '', /code_challenge_method/);
  });

  test('refuses a code exchange with the wrong code_verifier', async () => {
    const { callback, redirectUri } = await authorize(issuer, { username: 'mallory' });
    const { status, json } = await tokenRequest(issuer, {
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code') ?? '',
      redirect_uri: redirectUri,
      code_verifier: randomBytes(32).toString('base64url'),
    });
    assert.equal(status, 400);
    assert.equal(json['error'], 'invalid_grant');
  });

  test('accepts the desktop loopback redirect on any port (RFC 8252 §7.3)', async () => {
    for (const port of [1025, 49152, 65535]) {
      const redirectUri = `http://127.0.0.1:${port}/callback`;
      const { callback } = await authorize(issuer, { username: 'alice', redirectUri });
      assert.equal(callback.port, String(port));
      assert.ok(callback.searchParams.get('code'));
      assert.equal(callback.searchParams.get('state'), 'st4te');
    }
  });

  test('refuses redirect URIs other than the registered loopback callback', async () => {
    const { challenge } = pkce();
    for (const redirectUri of [
      'http://example.com/callback',
      'http://localhost:53682/callback',
      'http://127.0.0.2:53682/callback',
      'http://127.0.0.1:53682/other',
      'https://127.0.0.1:53682/callback',
    ]) {
      const res = await fetch(
        authorizationUrl(issuer, { redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256' }),
        { redirect: 'manual' },
      );
      assert.equal(res.status, 400, redirectUri);
      assert.equal(res.headers.get('location'), null, `${redirectUri} must not be redirected to`);
      assert.match(await res.text(), /redirect_uri/);
    }
  });

  test('asks for a user name only, on a page with a strict CSP and no external resources', async () => {
    const browser = new Browser();
    const { challenge } = pkce();
    const start = await browser.fetch(authorizationUrl(issuer, { code_challenge: challenge, code_challenge_method: 'S256' }));
    const res = await browser.fetch(new URL(start.headers.get('location') ?? '', issuer.issuer));
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    const html = await res.text();
    assert.match(html, /<html lang="en">/);
    assert.match(html, /<label for="username">User name<\/label>/);
    assert.match(html, /no password/);
    assert.doesNotMatch(html, /type="password"/);
    assert.doesNotMatch(html, /<script|\bsrc=|@import|https?:\/\//);
  });

  test('shows an error on the login page for invalid user names', async () => {
    for (const username of ['', '   ', 'has space', 'x'.repeat(65), '<script>alert(1)</script>', 'ünïcode']) {
      const browser = new Browser();
      const { challenge } = pkce();
      const start = await browser.fetch(authorizationUrl(issuer, { code_challenge: challenge, code_challenge_method: 'S256' }));
      const page = await browser.fetch(new URL(start.headers.get('location') ?? '', issuer.issuer));
      const action = /action="([^"]+)"/.exec(await page.text())?.[1] ?? '';
      const res = await browser.fetch(new URL(action, issuer.issuer), form({ username, action: 'sign-in' }));
      assert.equal(res.status, 400, JSON.stringify(username));
      const html = await res.text();
      assert.match(html, /role="alert">[^<]*(user name|User name)/, JSON.stringify(username));
      assert.match(html, /aria-invalid="true"/);
      assert.doesNotMatch(html, /<script>/);
    }
  });

  test('issues an RS256 JWT access token for the API, also when the client sends no resource', async () => {
    const jwks = createRemoteJWKSet(new URL(issuer.jwksUri));
    for (const resource of [undefined, AUDIENCE]) {
      const tokens = await signIn(issuer, 'alice@example.com', resource);
      assert.equal(decodeProtectedHeader(tokens['access_token'] ?? '').alg, 'RS256');
      const { payload, protectedHeader } = await jwtVerify(tokens['access_token'] ?? '', jwks, {
        issuer: issuer.issuer,
        audience: AUDIENCE,
        algorithms: ['RS256'],
      });
      assert.equal(protectedHeader.typ, 'at+jwt');
      assert.equal(payload.sub, 'alice@example.com');
      assert.equal(payload['client_id'], DESKTOP);
      assert.equal(Number(payload.exp) - Number(payload.iat), 300);
      assert.ok(tokens['refresh_token'], 'a plain sign-in yields a refresh token');
      const id = await jwtVerify(tokens['id_token'] ?? '', jwks, { issuer: issuer.issuer, audience: DESKTOP });
      assert.equal(id.payload.sub, 'alice@example.com');
    }
  });

  test('rotates refresh tokens and refuses a used one', async () => {
    const first = await signIn(issuer, 'bob');
    const second = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: first['refresh_token'] ?? '' });
    assert.equal(second.status, 200, JSON.stringify(second.json));
    assert.ok(second.json['refresh_token']);
    assert.notEqual(second.json['refresh_token'], first['refresh_token']);
    const { payload } = await jwtVerify(second.json['access_token'] ?? '', createRemoteJWKSet(new URL(issuer.jwksUri)), {
      issuer: issuer.issuer,
      audience: AUDIENCE,
    });
    assert.equal(payload.sub, 'bob');

    const reused = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: first['refresh_token'] ?? '' });
    assert.equal(reused.status, 400);
    assert.equal(reused.json['error'], 'invalid_grant');
  });

  test('revokes a refresh token (RFC 7009)', async () => {
    const tokens = await signIn(issuer, 'carol');
    const res = await fetch(
      new URL('/token/revocation', issuer.issuer),
      form({ client_id: DESKTOP, token: tokens['refresh_token'] ?? '', token_type_hint: 'refresh_token' }),
    );
    assert.equal(res.status, 200);
    const after = await tokenRequest(issuer, { grant_type: 'refresh_token', refresh_token: tokens['refresh_token'] ?? '' });
    assert.equal(after.status, 400);
    assert.equal(after.json['error'], 'invalid_grant');
  });

  test('signs a remembered browser in again without the form, consenting automatically', async () => {
    const browser = new Browser();
    const first = await authorize(issuer, { username: 'dave', browser });
    assert.equal(first.sawLoginForm, true);
    const second = await authorize(issuer, { username: 'ignored', browser });
    assert.equal(second.sawLoginForm, false);
    const { status, json } = await tokenRequest(issuer, {
      grant_type: 'authorization_code',
      code: second.callback.searchParams.get('code') ?? '',
      redirect_uri: second.redirectUri,
      code_verifier: second.verifier,
    });
    assert.equal(status, 200);
    const { payload } = await jwtVerify(json['access_token'] ?? '', createRemoteJWKSet(new URL(issuer.jwksUri)), {
      issuer: issuer.issuer,
      audience: AUDIENCE,
    });
    assert.equal(payload.sub, 'dave');
  });

  test('returns access_denied to the client when the person cancels', async () => {
    const browser = new Browser();
    const { challenge } = pkce();
    const start = await browser.fetch(authorizationUrl(issuer, { code_challenge: challenge, code_challenge_method: 'S256' }));
    const page = await browser.fetch(new URL(start.headers.get('location') ?? '', issuer.issuer));
    const action = /action="([^"]+)"/.exec(await page.text())?.[1] ?? '';
    let res = await browser.fetch(new URL(action, issuer.issuer), form({ username: '', action: 'cancel' }));
    res = await browser.fetch(new URL(res.headers.get('location') ?? '', issuer.issuer));
    const callback = new URL(res.headers.get('location') ?? '');
    assert.equal(callback.searchParams.get('error'), 'access_denied');
    assert.equal(callback.searchParams.get('state'), 'st4te');
  });

  test('refuses a resource indicator other than the API', async () => {
    const { challenge } = pkce();
    const res = await fetch(
      authorizationUrl(issuer, { code_challenge: challenge, code_challenge_method: 'S256', resource: 'https://elsewhere.test' }),
      { redirect: 'manual' },
    );
    const location = new URL(res.headers.get('location') ?? '');
    assert.equal(location.searchParams.get('error'), 'invalid_target');
  });
});

describe('embedded issuer options', () => {
  test('allows token requests from the web client only from its configured origins', async () => {
    const issuer = await startEmbeddedIssuer({
      audience: AUDIENCE,
      webRedirectUris: ['http://localhost:5173/callback'],
      webOrigins: ['http://localhost:5173'],
    });
    try {
      const tokenCall = (origin: string) =>
        fetch(new URL('/token', issuer.issuer), {
          ...form({ client_id: issuer.webClientId, grant_type: 'refresh_token', refresh_token: 'nope' }),
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
        });
      const allowed = await tokenCall('http://localhost:5173');
      assert.equal(allowed.headers.get('access-control-allow-origin'), 'http://localhost:5173');
      const refused = await tokenCall('http://evil.test');
      assert.equal(refused.headers.get('access-control-allow-origin'), null);
    } finally {
      await issuer.close();
    }
  });

  test('refuses an audience that is not an absolute URI', async () => {
    await assert.rejects(startEmbeddedIssuer({ audience: 'not a uri' }), TypeError);
  });

  test('stops listening on close', async () => {
    const issuer = await startEmbeddedIssuer({ audience: AUDIENCE });
    await issuer.close();
    await assert.rejects(fetch(new URL('/.well-known/openid-configuration', issuer.issuer)));
  });
});
