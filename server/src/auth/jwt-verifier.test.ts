import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, mock, test } from 'node:test';
import { SignJWT, exportJWK, exportPKCS8, exportSPKI, generateSecret, importPKCS8 } from 'jose';
import type { JWTPayload } from 'jose';
import { b64json, makeKey, nowSec, signToken, startJwksServer, unusedLoopbackUrl } from './jwks-test-server.js';
import type { JwksTestServer, TestKey } from './jwks-test-server.js';
import { JwtVerifier, defaultJwksUri, jwtOptionsFromEnv } from './jwt-verifier.js';
import type { JwtFailureReason, JwtVerification, JwtVerifierOptions } from './jwt-verifier.js';

const AUDIENCE = 'https://api.cloudtolocalllm.test';

let keyA: TestKey; // published
let keyB: TestKey; // published
let keyC: TestKey; // published only after "rotation"
let otherIssuerKey: TestKey; // never published
let ecKey: TestKey; // published, but ES256 is not an algorithm we accept
let jwks: JwksTestServer;

before(async () => {
  [keyA, keyB, keyC, otherIssuerKey, ecKey] = await Promise.all([
    makeKey('key-a'),
    makeKey('key-b'),
    makeKey('key-c'),
    makeKey('other-issuer-key'),
    makeKey('ec-key', 'ES256'),
  ]);
  jwks = await startJwksServer([keyA, keyB, ecKey]);
});
after(() => jwks.close());

/** A verifier for the fixture issuer; jwksUri left to its default, so that derivation is exercised too. */
const verifier = (opts: Partial<JwtVerifierOptions> = {}): JwtVerifier =>
  new JwtVerifier({ issuer: jwks.issuer, audience: AUDIENCE, jwksCooldownMs: 0, ...opts });

const claims = (overrides: JWTPayload = {}): JWTPayload => ({
  iss: jwks.issuer,
  aud: AUDIENCE,
  sub: 'auth0|user-1',
  iat: nowSec(),
  exp: nowSec() + 600,
  ...overrides,
});

const without = (name: string): JWTPayload => {
  const c = claims();
  delete c[name];
  return c;
};

function assertRefused(result: JwtVerification, reason: JwtFailureReason, token?: string): void {
  assert.equal(result.ok, false, `expected a refusal for '${reason}', got ${JSON.stringify(result)}`);
  if (result.ok) return;
  assert.equal(result.reason, reason, result.message);
  assert.ok(result.message.length > 0);
  if (token) {
    for (const part of token.split('.').filter((p) => p.length >= 8)) {
      assert.ok(!result.message.includes(part), 'the message must not echo the token');
    }
  }
}

async function refuses(token: string | undefined, reason: JwtFailureReason, v = verifier()): Promise<void> {
  assertRefused(await v.verify(token), reason, token);
}

async function accepts(token: string, v = verifier()): Promise<Extract<JwtVerification, { ok: true }>> {
  const result = await v.verify(token);
  assert.ok(result.ok, `expected acceptance, got ${JSON.stringify(result)}`);
  return result;
}

describe('JwtVerifier accepts', () => {
  test('a valid RS256 access token, with its subject, claims and expiry', async () => {
    const exp = nowSec() + 600;
    const result = await accepts(await signToken(keyA, claims({ exp, scope: 'read:models' })));
    assert.equal(result.subject, 'auth0|user-1');
    assert.equal(result.expiresAt, exp);
    assert.equal(result.claims['scope'], 'read:models');
  });

  test('a token signed by any published key', async () => {
    await accepts(await signToken(keyB, claims()));
  });

  test('an audience array that contains our API (Auth0 adds its userinfo audience)', async () => {
    await accepts(await signToken(keyA, claims({ aud: ['https://tenant.auth0.com/userinfo', AUDIENCE] })));
  });

  test('a token expired less than the 30 s default clock tolerance ago', async () => {
    await accepts(await signToken(keyA, claims({ exp: nowSec() - 10 })));
  });

  test('a token whose nbf is less than the clock tolerance ahead', async () => {
    await accepts(await signToken(keyA, claims({ nbf: nowSec() + 10 })));
  });

  test('a token whose iat is less than the clock tolerance ahead', async () => {
    await accepts(await signToken(keyA, claims({ iat: nowSec() + 10 })));
  });
});

describe('JwtVerifier refuses', () => {
  test('no token at all: missing', async () => {
    await refuses(undefined, 'missing');
    await refuses('', 'missing');
  });

  test('tokens that are not three base64url parts of JSON: malformed, without fetching keys', async () => {
    const v = verifier();
    const hitsBefore = jwks.hits;
    const good = await signToken(keyA, claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const malformed = {
      'two parts': `${h}.${p}`,
      'four parts': `${good}.${s}`,
      garbage: 'not-a-jwt-at-all',
      'non-JSON header': `${Buffer.from('{alg:RS256').toString('base64url')}.${p}.${s}`,
      'non-JSON payload': `${h}.${Buffer.from('sub=me').toString('base64url')}.${s}`,
      'header is a JSON array': `${b64json(['RS256'])}.${p}.${s}`,
      'payload is a JSON string': `${h}.${b64json('auth0|user-1')}.${s}`,
      'header without alg': `${b64json({ typ: 'JWT', kid: 'key-a' })}.${p}.${s}`,
      'standard base64, not base64url': `${h}.${p}+/.${s}`,
      'empty header': `.${p}.${s}`,
      'invalid UTF-8 in payload': `${h}.${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}.${s}`,
    };
    for (const [label, token] of Object.entries(malformed)) {
      const result = await v.verify(token);
      assert.equal(result.ok, false, label);
      if (!result.ok) assert.equal(result.reason, 'malformed', `${label}: ${result.message}`);
    }
    assert.equal(jwks.hits, hitsBefore, 'malformed tokens must not cost a JWKS fetch');
  });

  test('alg "none" (unsecured JWT, RFC 7519 §6): algorithm', async () => {
    const token = `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(claims())}.`;
    await refuses(token, 'algorithm');
    const withKid = `${b64json({ alg: 'none', kid: 'key-a' })}.${b64json(claims())}.`;
    await refuses(withKid, 'algorithm');
    const upperCase = `${b64json({ alg: 'None' })}.${b64json(claims())}.`;
    await refuses(upperCase, 'algorithm');
  });

  test('HS256 with a random secret: algorithm', async () => {
    const secret = await generateSecret('HS256', { extractable: true });
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'key-a' }).sign(secret);
    await refuses(token, 'algorithm');
  });

  test("HS256/384/512 with the RSA public key's PEM or JWK as the secret (key confusion): algorithm", async () => {
    const pem = new TextEncoder().encode(await exportSPKI(keyA.publicKey));
    const jwkBytes = new TextEncoder().encode(JSON.stringify(await exportJWK(keyA.publicKey)));
    const nBytes = Buffer.from(keyA.publicJwk.n ?? '', 'base64url');
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      for (const secret of [pem, jwkBytes, nBytes]) {
        const token = await new SignJWT(claims()).setProtectedHeader({ alg, typ: 'JWT', kid: 'key-a' }).sign(secret);
        await refuses(token, 'algorithm');
      }
    }
  });

  test('ES256 with a key the issuer does publish: algorithm', async () => {
    await refuses(await signToken(ecKey, claims()), 'algorithm');
  });

  test('PS256 with a published RSA key: algorithm', async () => {
    // The same RSA key, imported for RSASSA-PSS: were PS256 allowed, published key-a would verify it.
    const pssKey = await importPKCS8(await exportPKCS8(keyA.privateKey), 'PS256');
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'PS256', kid: 'key-a' }).sign(pssKey);
    await refuses(token, 'algorithm');
  });

  test('algorithm refusals happen before any key is fetched', async () => {
    const v = verifier();
    const hitsBefore = jwks.hits;
    await refuses(`${b64json({ alg: 'none' })}.${b64json(claims())}.`, 'algorithm', v);
    await refuses(await signToken(ecKey, claims()), 'algorithm', v);
    assert.equal(jwks.hits, hitsBefore);
  });

  test('a token expired beyond the clock tolerance: expired', async () => {
    await refuses(await signToken(keyA, claims({ exp: nowSec() - 60 })), 'expired');
  });

  test('a token expired within 30 s when the tolerance is set to 0: expired', async () => {
    await refuses(await signToken(keyA, claims({ exp: nowSec() - 10 })), 'expired', verifier({ clockToleranceSec: 0 }));
  });

  test('nbf beyond the clock tolerance in the future: not-yet-valid', async () => {
    await refuses(await signToken(keyA, claims({ nbf: nowSec() + 120 })), 'not-yet-valid');
  });

  test('iat beyond the clock tolerance in the future: not-yet-valid (issue 13)', async () => {
    await refuses(await signToken(keyA, claims({ iat: nowSec() + 120, exp: nowSec() + 3600 })), 'not-yet-valid');
  });

  test('no exp (RFC 9068 §2.2 requires one): malformed', async () => {
    await refuses(await signToken(keyA, without('exp')), 'malformed');
  });

  test('exp that is not a number: malformed', async () => {
    await refuses(await signToken(keyA, claims({ exp: 'tomorrow' as unknown as number })), 'malformed');
  });

  test('another issuer, a missing iss, or ours without its trailing slash: issuer', async () => {
    await refuses(await signToken(keyA, claims({ iss: 'https://evil.example/' })), 'issuer');
    await refuses(await signToken(keyA, without('iss')), 'issuer');
    await refuses(await signToken(keyA, claims({ iss: jwks.issuer.replace(/\/$/, '') })), 'issuer');
  });

  test('another audience, an array without ours, or no aud: audience', async () => {
    await refuses(await signToken(keyA, claims({ aud: 'https://other-api.test' })), 'audience');
    await refuses(await signToken(keyA, claims({ aud: ['https://other-api.test', 'https://tenant.auth0.com/userinfo'] })), 'audience');
    await refuses(await signToken(keyA, without('aud')), 'audience');
  });

  test('no sub, an empty sub, a blank sub, or a non-string sub: no-subject', async () => {
    await refuses(await signToken(keyA, without('sub')), 'no-subject');
    await refuses(await signToken(keyA, claims({ sub: '' })), 'no-subject');
    await refuses(await signToken(keyA, claims({ sub: '   ' })), 'no-subject');
    await refuses(await signToken(keyA, claims({ sub: 42 as unknown as string })), 'no-subject');
  });

  test("a kid the issuer does not publish, even after refetching its JWKS: unknown-key", async () => {
    const v = verifier({ jwksCooldownMs: 0 });
    const hitsBefore = jwks.hits;
    await refuses(await signToken(otherIssuerKey, claims()), 'unknown-key', v);
    // The first fetch fills the cache; the unknown kid prompts one refetch before giving up.
    assert.equal(jwks.hits - hitsBefore, 2);
  });

  test("a token signed with key B under key A's kid (swapped kid): signature", async () => {
    await refuses(await signToken(keyB, claims(), { kid: 'key-a' }), 'signature');
  });

  test('a token signed by a foreign key under a published kid: signature', async () => {
    await refuses(await signToken(otherIssuerKey, claims(), { kid: 'key-b' }), 'signature');
  });

  test('a validly signed token whose claims were edited afterwards: signature', async () => {
    const [h, , s] = (await signToken(keyA, claims())).split('.') as [string, string, string];
    await refuses(`${h}.${b64json(claims({ sub: 'auth0|someone-else' }))}.${s}`, 'signature');
  });

  test('a signature that is cut short: signature', async () => {
    const token = await signToken(keyA, claims());
    await refuses(token.slice(0, -10), 'signature');
  });
});

describe('JwtVerifier and the issuer JWKS', () => {
  // The cache and the cooldown are measured with Date.now() (jose's RemoteJWKSet): a faked Date
  // makes their boundaries exact, however slow the machine. Tokens are signed with the faked time.
  test('accepts a rotated-in key after one refetch, and the cooldown stops refetch storms', async () => {
    const server = await startJwksServer([keyA]);
    const cooldownMs = 400;
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    try {
      const v = new JwtVerifier({ issuer: server.issuer, audience: AUDIENCE, jwksCooldownMs: cooldownMs });
      const iss = { iss: server.issuer };
      await accepts(await signToken(keyA, claims(iss)), v);
      assert.equal(server.hits, 1);

      server.publish([keyA, keyC]);
      const rotated = await signToken(keyC, claims(iss));
      // Within the cooldown after the first fetch the new kid is not known yet, and is not fetched for.
      mock.timers.tick(cooldownMs - 1);
      await refuses(rotated, 'unknown-key', v);
      assert.equal(server.hits, 1);

      mock.timers.tick(1);
      const unknown = await signToken(otherIssuerKey, claims(iss));
      const results = await Promise.all([
        ...Array.from({ length: 5 }, () => v.verify(rotated)),
        ...Array.from({ length: 20 }, () => v.verify(unknown)),
      ]);
      for (const r of results.slice(0, 5)) assert.ok(r.ok, JSON.stringify(r));
      for (const r of results.slice(5)) assertRefused(r, 'unknown-key');
      assert.equal(server.hits, 2, '25 concurrent tokens with unknown kids share one refetch');

      mock.timers.tick(cooldownMs - 1);
      for (let i = 0; i < 20; i++) await refuses(unknown, 'unknown-key', v);
      assert.equal(server.hits, 2, 'no refetch during the cooldown');
      await accepts(await signToken(keyA, claims(iss)), v);
    } finally {
      mock.timers.reset();
      await server.close();
    }
  });

  test('by default an unknown kid prompts at most one refetch every 30 s', async () => {
    const server = await startJwksServer([keyA]);
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    try {
      const v = new JwtVerifier({ issuer: server.issuer, audience: AUDIENCE });
      const iss = { iss: server.issuer };
      await accepts(await signToken(keyA, claims(iss)), v);
      server.publish([keyA, keyC]);
      mock.timers.tick(29_999);
      await refuses(await signToken(keyC, claims(iss)), 'unknown-key', v);
      assert.equal(server.hits, 1, 'no refetch 29.999 s after the last fetch');
      mock.timers.tick(1);
      await accepts(await signToken(keyC, claims(iss)), v);
      assert.equal(server.hits, 2, 'one refetch at 30 s');
    } finally {
      mock.timers.reset();
      await server.close();
    }
  });

  test('stops accepting a retired key once the cached JWKS is older than jwksMaxAgeMs', async () => {
    const server = await startJwksServer([keyA, keyC]);
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    try {
      const v = new JwtVerifier({ issuer: server.issuer, audience: AUDIENCE, jwksMaxAgeMs: 200 });
      const oldKeyToken = await signToken(keyA, claims({ iss: server.issuer }));
      await accepts(oldKeyToken, v);
      server.publish([keyC]);
      mock.timers.tick(199);
      await accepts(oldKeyToken, v);
      assert.equal(server.hits, 1, 'a fresh cache is not refetched for a known kid');
      mock.timers.tick(1);
      await refuses(oldKeyToken, 'unknown-key', v);
      assert.equal(server.hits, 2);
      await accepts(await signToken(keyC, claims({ iss: server.issuer })), v);
    } finally {
      mock.timers.reset();
      await server.close();
    }
  });

  test('the JWKS server is down: jwks-unavailable', async () => {
    const issuer = await unusedLoopbackUrl();
    const v = new JwtVerifier({ issuer, audience: AUDIENCE });
    await refuses(await signToken(keyA, claims({ iss: issuer })), 'jwks-unavailable', v);
  });

  test('the JWKS endpoint answers 500, or not JSON: jwks-unavailable', async () => {
    const server = await startJwksServer([keyA]);
    try {
      const token = await signToken(keyA, claims({ iss: server.issuer }));
      server.mode = 'error';
      await refuses(token, 'jwks-unavailable', new JwtVerifier({ issuer: server.issuer, audience: AUDIENCE }));
      server.mode = 'not-json';
      await refuses(token, 'jwks-unavailable', new JwtVerifier({ issuer: server.issuer, audience: AUDIENCE }));
    } finally {
      await server.close();
    }
  });

  test('the JWKS endpoint does not answer within fetchTimeoutMs: jwks-unavailable', async () => {
    const server = await startJwksServer([keyA]);
    try {
      server.mode = 'hang';
      // The server never answers: only the fetch timeout can end the wait (else the test's timeout).
      const v = new JwtVerifier({ issuer: server.issuer, audience: AUDIENCE, fetchTimeoutMs: 150 });
      await refuses(await signToken(keyA, claims({ iss: server.issuer })), 'jwks-unavailable', v);
      assert.equal(server.hits, 1);
    } finally {
      await server.close();
    }
  });

  test('the JWKS publishes something that is not a key set: jwks-unavailable', async () => {
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":"none"}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      const v = new JwtVerifier({ issuer, audience: AUDIENCE });
      await refuses(await signToken(keyA, claims({ iss: issuer })), 'jwks-unavailable', v);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('keeps verifying with cached keys while the JWKS server is down', async () => {
    const server = await startJwksServer([keyA]);
    const v = new JwtVerifier({ issuer: server.issuer, audience: AUDIENCE, jwksCooldownMs: 0 });
    const token = await signToken(keyA, claims({ iss: server.issuer }));
    await accepts(token, v);
    await server.close();
    await accepts(token, v);
    // An unknown kid needs a refetch, which now fails: that is the server's problem, not the token's.
    await refuses(await signToken(keyC, claims({ iss: server.issuer })), 'jwks-unavailable', v);
  });

  test('uses an explicit jwksUri instead of the issuer default', async () => {
    const server = await startJwksServer([keyA]);
    try {
      const issuer = 'https://tenant.example.test/';
      const v = new JwtVerifier({ issuer, audience: AUDIENCE, jwksUri: server.jwksUri });
      await accepts(await signToken(keyA, claims({ iss: issuer })), v);
      assert.equal(server.hits, 1);
    } finally {
      await server.close();
    }
  });
});

describe('JwtVerifier options', () => {
  test('the default JWKS URI is under the issuer, with or without its trailing slash', () => {
    assert.equal(defaultJwksUri('https://tenant.auth0.com/'), 'https://tenant.auth0.com/.well-known/jwks.json');
    assert.equal(defaultJwksUri('https://tenant.auth0.com'), 'https://tenant.auth0.com/.well-known/jwks.json');
    assert.equal(defaultJwksUri('https://idp.example/tenant-1'), 'https://idp.example/tenant-1/.well-known/jwks.json');
  });

  test('refuses to be built with a missing audience, a non-https issuer or JWKS, or bad limits', () => {
    const ok = { issuer: 'https://tenant.auth0.com/', audience: AUDIENCE };
    assert.throws(() => new JwtVerifier({ ...ok, audience: '' }), /audience/);
    assert.throws(() => new JwtVerifier({ ...ok, issuer: '' }), /issuer/);
    assert.throws(() => new JwtVerifier({ ...ok, issuer: 'http://tenant.auth0.com/' }), /issuer.*https/);
    assert.throws(() => new JwtVerifier({ ...ok, jwksUri: 'http://tenant.auth0.com/jwks.json' }), /jwksUri.*https/);
    assert.throws(() => new JwtVerifier({ ...ok, clockToleranceSec: -1 }), /clockToleranceSec/);
    assert.throws(() => new JwtVerifier({ ...ok, fetchTimeoutMs: 0 }), /fetchTimeoutMs/);
    assert.throws(() => new JwtVerifier({ ...ok, jwksCooldownMs: Number.NaN }), /jwksCooldownMs/);
    assert.throws(() => new JwtVerifier({ ...ok, jwksMaxAgeMs: -1 }), /jwksMaxAgeMs/);
    assert.doesNotThrow(() => new JwtVerifier({ ...ok, issuer: 'http://localhost:3000/' }));
  });
});

describe('jwtOptionsFromEnv', () => {
  const domainOnly = { issuer: 'https://tenant.auth0.com/', audience: AUDIENCE, jwksUri: 'https://tenant.auth0.com/.well-known/jwks.json' };
  const good: [string, NodeJS.ProcessEnv, JwtVerifierOptions | undefined][] = [
    ['nothing set: the embedded issuer is used', {}, undefined],
    ['an empty AUTH0_DOMAIN counts as unset', { AUTH0_DOMAIN: '  ' }, undefined],
    ['a bare domain', { AUTH0_DOMAIN: 'tenant.auth0.com', AUTH0_AUDIENCE: AUDIENCE }, domainOnly],
    ['an https URL', { AUTH0_DOMAIN: 'https://tenant.auth0.com', AUTH0_AUDIENCE: AUDIENCE }, domainOnly],
    ['an https URL with a slash', { AUTH0_DOMAIN: 'https://tenant.auth0.com/', AUTH0_AUDIENCE: AUDIENCE }, domainOnly],
    ['surrounding whitespace', { AUTH0_DOMAIN: ' tenant.auth0.com\n', AUTH0_AUDIENCE: ` ${AUDIENCE} ` }, domainOnly],
    [
      'http on loopback for local runs',
      { AUTH0_DOMAIN: 'http://127.0.0.1:8080', AUTH0_AUDIENCE: AUDIENCE },
      { issuer: 'http://127.0.0.1:8080/', audience: AUDIENCE, jwksUri: 'http://127.0.0.1:8080/.well-known/jwks.json' },
    ],
    [
      'http on localhost',
      { AUTH0_DOMAIN: 'http://localhost:3000/', AUTH0_AUDIENCE: AUDIENCE },
      { issuer: 'http://localhost:3000/', audience: AUDIENCE, jwksUri: 'http://localhost:3000/.well-known/jwks.json' },
    ],
    [
      'an issuer override (custom domain) is used verbatim',
      { AUTH0_DOMAIN: 'tenant.auth0.com', AUTH0_AUDIENCE: AUDIENCE, AUTH0_ISSUER: 'https://login.example.com/' },
      { ...domainOnly, issuer: 'https://login.example.com/' },
    ],
    [
      'a JWKS URI override',
      { AUTH0_DOMAIN: 'tenant.auth0.com', AUTH0_AUDIENCE: AUDIENCE, AUTH0_JWKS_URI: 'https://keys.example.com/jwks.json' },
      { ...domainOnly, jwksUri: 'https://keys.example.com/jwks.json' },
    ],
  ];
  for (const [label, env, expected] of good) {
    test(`accepts ${label}`, () => assert.deepEqual(jwtOptionsFromEnv(env), expected));
  }

  const base = { AUTH0_DOMAIN: 'tenant.auth0.com', AUTH0_AUDIENCE: AUDIENCE };
  const bad: [string, NodeJS.ProcessEnv, RegExp][] = [
    ['a domain without an audience', { AUTH0_DOMAIN: 'tenant.auth0.com' }, /AUTH0_AUDIENCE/],
    ['a blank audience', { ...base, AUTH0_AUDIENCE: '  ' }, /AUTH0_AUDIENCE/],
    ['an http domain', { ...base, AUTH0_DOMAIN: 'http://tenant.auth0.com' }, /AUTH0_DOMAIN must be an https URL/],
    ['another scheme', { ...base, AUTH0_DOMAIN: 'ftp://tenant.auth0.com' }, /AUTH0_DOMAIN must be an https URL/],
    ['a domain with a path', { ...base, AUTH0_DOMAIN: 'https://tenant.auth0.com/api/v2' }, /AUTH0_DOMAIN .*without a path/],
    ['a domain with a query', { ...base, AUTH0_DOMAIN: 'tenant.auth0.com?x=1' }, /AUTH0_DOMAIN/],
    ['a domain that is no host name', { ...base, AUTH0_DOMAIN: 'tenant auth0 com' }, /AUTH0_DOMAIN is not a URL/],
    ['credentials in the domain', { ...base, AUTH0_DOMAIN: 'https://user:pw@tenant.auth0.com' }, /AUTH0_DOMAIN must not contain credentials/],
    ['an http issuer', { ...base, AUTH0_ISSUER: 'http://tenant.auth0.com/' }, /AUTH0_ISSUER must be an https URL/],
    ['an issuer that is no URL', { ...base, AUTH0_ISSUER: 'tenant.auth0.com' }, /AUTH0_ISSUER is not a URL/],
    ['an issuer with a query', { ...base, AUTH0_ISSUER: 'https://tenant.auth0.com/?a=b' }, /AUTH0_ISSUER must not have a query/],
    ['an http JWKS URI', { ...base, AUTH0_JWKS_URI: 'http://tenant.auth0.com/.well-known/jwks.json' }, /AUTH0_JWKS_URI must be an https URL/],
    ['a JWKS URI that is no URL', { ...base, AUTH0_JWKS_URI: '/.well-known/jwks.json' }, /AUTH0_JWKS_URI is not a URL/],
  ];
  for (const [label, env, message] of bad) {
    test(`refuses ${label}`, () => assert.throws(() => jwtOptionsFromEnv(env), message));
  }
});

test('the issuer and its keys are reached over https only (plain http on loopback alone, for local issuers)', () => {
  const audience = 'https://api.example.test';
  assert.throws(() => new JwtVerifier({ issuer: 'http://tenant.example.com/', audience }), /issuer must be an https URL/);
  assert.throws(() => new JwtVerifier({ issuer: 'https://tenant.example.com/', audience, jwksUri: 'http://tenant.example.com/.well-known/jwks.json' }), /jwksUri must be an https URL/);
  assert.doesNotThrow(() => new JwtVerifier({ issuer: 'https://tenant.example.com/', audience }));
  assert.doesNotThrow(() => new JwtVerifier({ issuer: 'http://127.0.0.1:4000', audience }));
});

describe('JwtVerifier remembers verified tokens', () => {
  /** Counts the full checks (signature, claims) behind `verify`. */
  const countFullChecks = (v: JwtVerifier): { calls: number } => {
    const spy = mock.method(v as unknown as { verifyFully: (t: string) => Promise<JwtVerification> }, 'verifyFully');
    return {
      get calls() {
        return spy.mock.callCount();
      },
    };
  };

  test('a token that verified is not checked again while it is valid', async () => {
    const v = verifier();
    const full = countFullChecks(v);
    const token = await signToken(keyA, claims());
    const first = await accepts(token, v);
    const second = await accepts(token, v);
    assert.equal(full.calls, 1);
    assert.equal(second.subject, first.subject);
  });

  test('a refused token is checked in full every time', async () => {
    const v = verifier();
    const full = countFullChecks(v);
    const token = await signToken(keyA, claims({ aud: 'another-api' }));
    await refuses(token, 'audience', v);
    await refuses(token, 'audience', v);
    assert.equal(full.calls, 2);
  });

  test('a remembered token is refused as expired once its exp (plus the clock tolerance) has passed', async () => {
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    try {
      const v = verifier({ clockToleranceSec: 5 });
      const token = await signToken(keyA, claims({ exp: nowSec() + 60 }));
      await accepts(token, v);
      mock.timers.tick(64_000);
      await accepts(token, v);
      mock.timers.tick(1_500);
      await refuses(token, 'expired', v);
    } finally {
      mock.timers.reset();
    }
  });

  test('at most maxCachedTokens are remembered: the oldest is checked again; 0 remembers none', async () => {
    const v = verifier({ maxCachedTokens: 2 });
    const full = countFullChecks(v);
    const [a, b, c] = await Promise.all(['u-a', 'u-b', 'u-c'].map((sub) => signToken(keyA, claims({ sub }))));
    for (const t of [a, b, c, c, b]) await accepts(t!, v);
    assert.equal(full.calls, 3, 'b and c were remembered');
    await accepts(a!, v);
    assert.equal(full.calls, 4, 'a had been dropped for c');
    const off = verifier({ maxCachedTokens: 0 });
    const offFull = countFullChecks(off);
    await accepts(a!, off);
    await accepts(a!, off);
    assert.equal(offFull.calls, 2);
    assert.throws(() => verifier({ maxCachedTokens: -1 }), /maxCachedTokens must be a non-negative integer/);
  });
});
