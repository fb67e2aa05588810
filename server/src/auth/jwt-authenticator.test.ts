import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { JWTPayload } from 'jose';
import { b64json, makeKey, nowSec, signToken, startJwksServer, unusedLoopbackUrl } from './jwks-test-server.js';
import type { JwksTestServer, TestKey } from './jwks-test-server.js';
import { JwtAuthenticator, wwwAuthenticate } from './jwt-authenticator.js';
import { JwtVerifier } from './jwt-verifier.js';

const AUDIENCE = 'https://api.cloudtolocalllm.test';
const USER = 'auth0|user-1';

let key: TestKey;
let jwks: JwksTestServer;
let verifier: JwtVerifier;

before(async () => {
  key = await makeKey('key-a');
  jwks = await startJwksServer([key]);
  verifier = new JwtVerifier({ issuer: jwks.issuer, audience: AUDIENCE });
});
after(() => jwks.close());

const token = (overrides: JWTPayload = {}): Promise<string> =>
  signToken(key, { iss: jwks.issuer, aud: AUDIENCE, sub: USER, exp: nowSec() + 600, ...overrides });
const bearer = (t: string): IncomingHttpHeaders => ({ authorization: `Bearer ${t}` });

describe('JwtAuthenticator', () => {
  test('accepts a valid token and names its subject as the principal', async () => {
    const auth = new JwtAuthenticator(verifier);
    assert.deepEqual(await auth.authenticate(bearer(await token()), 'ollama'), { ok: true, principal: { subject: USER } });
    assert.deepEqual(await auth.authenticate(bearer(await token({ sub: 'auth0|user-2' })), 'bridge'), {
      ok: true,
      principal: { subject: 'auth0|user-2' },
    });
  });

  test('no Authorization header, or another scheme: 401 missing', async () => {
    const auth = new JwtAuthenticator(verifier);
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }]) {
      const result = await auth.authenticate(headers, 'ollama');
      assert.equal(result.ok, false);
      if (!result.ok) assert.deepEqual([result.status, result.reason], [401, 'missing']);
    }
  });

  test('a Bearer header whose token is not b64token syntax: 401 malformed', async () => {
    const auth = new JwtAuthenticator(verifier);
    for (const authorization of ['Bearer', 'Bearer a b', 'Bearer <script>', 'bearer "quoted"']) {
      const result = await auth.authenticate({ authorization }, 'ollama');
      assert.equal(result.ok, false, authorization);
      if (!result.ok) assert.deepEqual([result.status, result.reason], [401, 'malformed'], authorization);
    }
  });

  test('refused tokens: 401 with the verifier reason as the reason', async () => {
    const auth = new JwtAuthenticator(verifier, { expectedSubject: USER });
    const cases: [string, string][] = [
      ['expired', await token({ exp: nowSec() - 3600 })],
      ['algorithm', `${b64json({ alg: 'none' })}.${b64json({ iss: jwks.issuer, aud: AUDIENCE, sub: USER })}.`],
      ['issuer', await token({ iss: 'https://evil.example/' })],
      ['audience', await token({ aud: 'https://other-api.test' })],
      ['no-subject', await token({ sub: '' })],
      ['malformed', 'abc.def'],
      // A bad token for another user is a 401 (bad credential), not a 403.
      ['signature', await signToken(await makeKey('key-a'), { iss: jwks.issuer, aud: AUDIENCE, sub: 'auth0|user-2', exp: nowSec() + 600 })],
    ];
    for (const [reason, t] of cases) {
      const result = await auth.authenticate(bearer(t), 'ollama');
      assert.equal(result.ok, false, reason);
      if (!result.ok) {
        assert.deepEqual([result.status, result.reason], [401, reason]);
        assert.ok(!result.message.includes(t), 'the message must not echo the token');
      }
    }
  });

  test('a valid token for another user than the expected one: 403 wrong-user', async () => {
    const auth = new JwtAuthenticator(verifier, { expectedSubject: USER });
    assert.equal((await auth.authenticate(bearer(await token()), 'bridge')).ok, true);
    const result = await auth.authenticate(bearer(await token({ sub: 'auth0|user-2' })), 'bridge');
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.deepEqual([result.status, result.reason], [403, 'wrong-user']);
      assert.ok(!result.message.includes('auth0|user-2'), 'the message does not reveal whose token it was');
    }
  });

  test("the issuer's keys cannot be fetched: 401 with reason jwks-unavailable (the API layer answers 503)", async () => {
    const issuer = await unusedLoopbackUrl();
    const auth = new JwtAuthenticator(new JwtVerifier({ issuer, audience: AUDIENCE }));
    const t = await signToken(key, { iss: issuer, aud: AUDIENCE, sub: USER, exp: nowSec() + 600 });
    const result = await auth.authenticate(bearer(t), 'ollama');
    assert.equal(result.ok, false);
    if (!result.ok) assert.deepEqual([result.status, result.reason], [401, 'jwks-unavailable']);
  });

  test('verifyRequest returns the full verification with the claims', async () => {
    const auth = new JwtAuthenticator(verifier, { expectedSubject: 'somebody-else' });
    const exp = nowSec() + 600;
    const result = await auth.verifyRequest(bearer(await token({ exp, scope: 'openid' })));
    assert.ok(result.ok);
    assert.equal(result.subject, USER);
    assert.equal(result.expiresAt, exp);
    assert.equal(result.claims['scope'], 'openid');
    const missing = await auth.verifyRequest({});
    assert.equal(missing.ok, false);
    if (!missing.ok) assert.equal(missing.reason, 'missing');
  });
});

describe('wwwAuthenticate (RFC 6750 §3)', () => {
  test('no credentials: the realm only, no error code (§3.1)', () => {
    assert.equal(wwwAuthenticate({ reason: 'missing', message: 'send a token' }), 'Bearer realm="CloudToLocalLLM"');
  });

  test('a refused token: invalid_token with the message as error_description', () => {
    assert.equal(
      wwwAuthenticate({ reason: 'expired', message: 'the token has expired; sign in again to get a new one' }),
      'Bearer realm="CloudToLocalLLM", error="invalid_token", error_description="the token has expired; sign in again to get a new one"',
    );
    assert.match(wwwAuthenticate({ reason: 'malformed', message: 'x' }), /error="invalid_token"/);
  });

  test('the keys could not be fetched: no error code, the token was not found invalid', () => {
    assert.equal(wwwAuthenticate({ reason: 'jwks-unavailable', message: 'try again' }), 'Bearer realm="CloudToLocalLLM"');
  });

  test('another user: insufficient_scope', () => {
    assert.match(wwwAuthenticate({ reason: 'wrong-user', message: 'not yours' }), /^Bearer realm="CloudToLocalLLM", error="insufficient_scope", /);
  });

  test('quotes, backslashes, control and non-ASCII characters cannot break out of error_description', () => {
    const header = wwwAuthenticate({ reason: 'signature', message: 'a "quoted" \\ back\\slash\r\nInjected: yes – café' });
    assert.equal(
      header,
      `Bearer realm="CloudToLocalLLM", error="invalid_token", error_description="a 'quoted'  backslashInjected: yes  caf"`,
    );
    const description = /error_description="(.*)"$/.exec(header)?.[1] ?? '';
    assert.match(description, /^[\x20\x21\x23-\x5B\x5D-\x7E]*$/);
  });
});
