/**
 * The app's sign-in state (AuthSession) against the real embedded issuer, with the browser
 * replaced by the headless sign-in and the keychain by a memory store (the browser and the real
 * keychain are sign-in-browser.test.ts). Refresh tokens rotate here as at Auth0: replaying a
 * consumed one revokes the whole grant, so any double refresh or stale stored token shows up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { AuthError } from '../../main/auth/auth-error.js';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { refresh, type SignInOptions } from '../../main/auth/pkce-sign-in.js';
import { AuthSession, SignedOutError, type AuthSessionOptions, type AuthState } from '../../main/auth/session.js';
import type { TokenSet } from '../../main/auth/token-set.js';
import { MemoryTokenStore, type TokenStore } from '../../main/auth/token-store.js';
import { startEmbeddedIssuer, type EmbeddedIssuer } from '@cloudtolocalllm/server/issuer/embedded-issuer';

const AUDIENCE = 'https://api.cloudtolocalllm.test';

function isAuthError(code: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AuthError, `expected an AuthError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

/** The headless sign-in in place of the browser: types `username` into the issuer's form. */
function headlessAs(username: string): (options: SignInOptions) => Promise<TokenSet> {
  return (options) =>
    headlessSignIn({ issuer: options.issuer, clientId: options.clientId, audience: options.audience, username, timeoutMs: 10_000 });
}

interface Harness {
  session: AuthSession;
  store: TokenStore;
  states: AuthState[];
  errors: Error[];
  refreshes: () => number;
}

function sessionFor(issuer: EmbeddedIssuer, options: Partial<AuthSessionOptions> & { username?: string } = {}): Harness {
  let refreshes = 0;
  const store = options.store ?? new MemoryTokenStore();
  const session = new AuthSession({
    issuer: issuer.issuer,
    clientId: issuer.desktopClientId,
    audience: issuer.audience,
    store,
    openBrowser: () => assert.fail('no browser in these tests'),
    signInImpl: options.signInImpl ?? headlessAs(options.username ?? 'alice'),
    refreshImpl: (tokens) => {
      refreshes++;
      return (options.refreshImpl ?? refresh)(tokens);
    },
    ...(options.signOutImpl ? { signOutImpl: options.signOutImpl } : {}),
  });
  const states: AuthState[] = [];
  const errors: Error[] = [];
  session.on('state', (state) => states.push(state));
  session.on('error', (err) => errors.push(err));
  return { session, store, states, errors, refreshes: () => refreshes };
}

describe('AuthSession with tokens that live 10 minutes', () => {
  let issuer: EmbeddedIssuer;
  before(async () => {
    issuer = await startEmbeddedIssuer({ audience: AUDIENCE });
  });
  after(() => issuer.close());

  test('starts signed out with nothing stored; accessToken() then rejects with SignedOutError', async () => {
    const { session, states } = sessionFor(issuer);
    assert.deepEqual(await session.restore(), { state: 'signed-out', refreshed: false });
    assert.equal(session.state, 'signed-out');
    assert.equal(session.user, undefined);
    await assert.rejects(session.accessToken(), (err: unknown) => err instanceof SignedOutError && err.code === 'signed-out');
    assert.deepEqual(states, []);
  });

  test('signs in, stores the tokens, and names the user from the ID token', async () => {
    const { session, store, states, errors } = sessionFor(issuer, { username: 'bob.b@example.com' });
    const user = await session.signIn();
    assert.deepEqual(user, { subject: 'bob.b@example.com', name: 'bob.b@example.com' });
    assert.deepEqual(session.user, user);
    assert.deepEqual(states, ['signing-in', 'signed-in']);
    assert.deepEqual(errors, []);
    const stored = await store.load({ issuer: issuer.issuer, clientId: issuer.desktopClientId });
    assert.ok(stored?.refreshToken);
    assert.equal(await session.accessToken(), stored.accessToken);
    assert.deepEqual(await session.signIn(), user, 'signing in while signed in changes nothing');
    assert.deepEqual(states, ['signing-in', 'signed-in']);
  });

  test('restores a stored sign-in with time left without asking the issuer', async () => {
    const first = sessionFor(issuer, { username: 'carol' });
    await first.session.signIn();
    const restarted = sessionFor(issuer, { store: first.store });
    assert.deepEqual(await restarted.session.restore(), { state: 'signed-in', refreshed: false });
    assert.equal(restarted.session.user?.subject, 'carol');
    assert.deepEqual(restarted.states, ['signed-in']);
    assert.equal(await restarted.session.accessToken(), await first.session.accessToken());
    assert.equal(restarted.refreshes(), 0);
  });

  test('sign-out clears the store and revokes the grant: the old refresh token is refused', async () => {
    const { session, store, states } = sessionFor(issuer, { username: 'dave' });
    await session.signIn();
    const client = { issuer: issuer.issuer, clientId: issuer.desktopClientId };
    const tokens = await store.load(client);
    assert.ok(tokens);
    assert.deepEqual(await session.signOut(), { revoked: true, cleared: true, errors: [] });
    assert.equal(session.state, 'signed-out');
    assert.deepEqual(states, ['signing-in', 'signed-in', 'signed-out']);
    assert.equal(await store.load(client), undefined);
    await assert.rejects(refresh(tokens), isAuthError('refresh-failed'));
    await assert.rejects(session.accessToken(), SignedOutError);
  });

  test('a failed sign-in returns to signed-out and reports the error', async () => {
    const { session, states, errors } = sessionFor(issuer, {
      signInImpl: () => Promise.reject(new AuthError('access-denied', 'The issuer refused the sign-in (access_denied).')),
    });
    await assert.rejects(session.signIn(), isAuthError('access-denied'));
    assert.deepEqual(states, ['signing-in', 'signed-out']);
    assert.equal(errors.length, 1);
  });

  test('cancelSignIn() ends a sign-in that waits for the browser', async () => {
    let opened!: () => void;
    const browserOpened = new Promise<void>((resolve) => (opened = resolve));
    const session = new AuthSession({
      issuer: issuer.issuer,
      clientId: issuer.desktopClientId,
      audience: issuer.audience,
      store: new MemoryTokenStore(),
      openBrowser: () => opened(),
    });
    const signingIn = session.signIn();
    await browserOpened;
    assert.equal(session.state, 'signing-in');
    session.cancelSignIn();
    await assert.rejects(signingIn, isAuthError('cancelled'));
    assert.equal(session.state, 'signed-out');
  });

  test('a store that cannot save leaves the person signed in for this run, and says so', async () => {
    const store = new MemoryTokenStore();
    store.save = () => Promise.reject(new Error('Cannot create an item in a locked collection'));
    const { session, errors } = sessionFor(issuer, { store, username: 'erin' });
    await session.signIn();
    assert.equal(session.state, 'signed-in');
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', /could not be stored \(Cannot create an item in a locked collection\): you stay signed in only until/);
  });

  test('sign-out still forgets the tokens when the issuer cannot revoke them, and says so', async () => {
    const { session, store, errors } = sessionFor(issuer, {
      username: 'frank',
      signOutImpl: () => Promise.reject(new AuthError('issuer-unreachable', 'The issuer cannot be reached (fetch failed).')),
    });
    await session.signIn();
    const outcome = await session.signOut();
    assert.equal(outcome.revoked, false);
    assert.equal(outcome.cleared, true);
    assert.match(outcome.errors[0]?.message ?? '', /Signed out on this computer, but the issuer did not revoke the sign-in \(.*\): it stays valid until it expires/);
    assert.deepEqual(errors, outcome.errors);
    assert.equal(session.state, 'signed-out');
    assert.equal(await store.load(), undefined);
  });
});

describe('AuthSession with tokens that live 30 s (always inside the 60 s refresh margin)', () => {
  let issuer: EmbeddedIssuer;
  before(async () => {
    issuer = await startEmbeddedIssuer({ audience: AUDIENCE, accessTokenTtlSec: 30 });
  });
  after(() => issuer.close());
  const clientOf = (i: EmbeddedIssuer) => ({ issuer: i.issuer, clientId: i.desktopClientId });

  test('restore() refreshes and stores the rotated refresh token; the consumed one is dead', async () => {
    const first = sessionFor(issuer, { username: 'gina' });
    await first.session.signIn();
    const signedIn = await first.store.load(clientOf(issuer));
    assert.ok(signedIn?.refreshToken);

    const restarted = sessionFor(issuer, { store: first.store });
    assert.deepEqual(await restarted.session.restore(), { state: 'signed-in', refreshed: true });
    assert.equal(restarted.refreshes(), 1);
    const stored = await first.store.load(clientOf(issuer));
    assert.ok(stored?.refreshToken);
    assert.notEqual(stored.refreshToken, signedIn.refreshToken, 'the store holds the rotated refresh token');
    assert.notEqual(stored.accessToken, signedIn.accessToken);
    assert.equal(stored.subject, 'gina');

    // Each call inside the margin refreshes again, from the token the store holds.
    const next = await restarted.session.accessToken();
    assert.equal(restarted.refreshes(), 2);
    const storedAgain = await first.store.load(clientOf(issuer));
    assert.equal(storedAgain?.accessToken, next);
    assert.notEqual(storedAgain?.refreshToken, stored.refreshToken);
  });

  test('concurrent accessToken() calls share one refresh, and the grant survives it', async () => {
    const { session, store, refreshes } = sessionFor(issuer, { username: 'hal' });
    await session.signIn();
    const before = await store.load(clientOf(issuer));
    const results = await Promise.all(Array.from({ length: 8 }, () => session.accessToken()));
    assert.equal(refreshes(), 1, 'one refresh for eight callers');
    assert.equal(new Set(results).size, 1);
    assert.notEqual(results[0], before?.accessToken);
    const after = await store.load(clientOf(issuer));
    assert.equal(after?.accessToken, results[0]);
    assert.notEqual(after?.refreshToken, before?.refreshToken);
    // Two refreshes with the same token would have been a replay, revoking the grant: this one would fail.
    await session.accessToken();
    assert.equal(refreshes(), 2);
    assert.equal(session.state, 'signed-in');
  });

  test('a refused refresh (grant revoked by a replay) signs out and clears the store', async () => {
    const { session, store, states, errors } = sessionFor(issuer, { username: 'ivy' });
    await session.signIn();
    const signedIn = await store.load(clientOf(issuer));
    assert.ok(signedIn);
    await session.accessToken(); // rotates: signedIn.refreshToken is now consumed
    await assert.rejects(refresh(signedIn), isAuthError('refresh-failed')); // the replay revokes the grant
    await assert.rejects(session.accessToken(), isAuthError('refresh-failed'));
    assert.equal(session.state, 'signed-out');
    assert.equal(states.at(-1), 'signed-out');
    assert.equal(await store.load(clientOf(issuer)), undefined);
    assert.ok(errors.some((err) => err instanceof AuthError && err.code === 'refresh-failed' && /Sign in again/.test(err.message)));
  });

  test('restore() with a revoked grant signs out and clears the store', async () => {
    const first = sessionFor(issuer, { username: 'jack' });
    await first.session.signIn();
    const tokens = await first.store.load(clientOf(issuer));
    assert.ok(tokens);
    await first.session.signOut();
    await first.store.save(tokens); // as if the app had died before clearing the keychain

    const restarted = sessionFor(issuer, { store: first.store });
    const result = await restarted.session.restore();
    assert.equal(result.state, 'signed-out');
    assert.ok(result.error instanceof AuthError && result.error.code === 'refresh-failed');
    assert.equal(await first.store.load(clientOf(issuer)), undefined);
  });

  test('restore() with the issuer unreachable keeps the tokens, stays signed in and reports it', async () => {
    const down = await startEmbeddedIssuer({ audience: AUDIENCE, accessTokenTtlSec: 30 });
    const first = sessionFor(down, { username: 'kim' });
    await first.session.signIn();
    const tokens = await first.store.load(clientOf(down));
    assert.ok(tokens);
    await down.close();

    const restarted = sessionFor(down, { store: first.store });
    const result = await restarted.session.restore();
    assert.equal(result.state, 'signed-in');
    assert.ok(result.error instanceof AuthError && result.error.code === 'issuer-unreachable', String(result.error));
    assert.equal(restarted.errors.length, 1);
    assert.deepEqual(await first.store.load(clientOf(down)), tokens, 'the stored tokens are kept');
    // The access token has not expired yet: it is still handed out while the issuer is away.
    assert.equal(await restarted.session.accessToken(), tokens.accessToken);

    // Once it has expired there is nothing to hand out.
    await first.store.save({ ...tokens, expiresAt: Date.now() - 1_000 });
    const later = sessionFor(down, { store: first.store });
    await later.session.restore();
    assert.equal(later.session.state, 'signed-in');
    await assert.rejects(later.session.accessToken(), isAuthError('issuer-unreachable'));
    assert.equal(later.session.state, 'signed-in');
  });
});
