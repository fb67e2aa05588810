/**
 * Child process of sign-in-browser.test.ts. keytar talks to the Secret Service over the D-Bus
 * session bus of the process it runs in, so the parent starts this file inside a
 * `dbus-run-session` with an unlocked gnome-keyring (mode "keychain"), or with no usable bus
 * (mode "no-keychain"). It prints one line `RESULT <json>` and exits; never a token.
 *
 *   keychain     Chromium signs in through the embedded issuer's login page while
 *                AuthSession.signIn() waits on the loopback redirect; the tokens go to the
 *                real keychain, are read back, refreshed (rotated) and finally signed out.
 *   no-keychain  openTokenStore() must fall back to memory quickly, with its message; a
 *                headless sign-in then works from memory.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { AuthError } from '../../main/auth/auth-error.js';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { refresh } from '../../main/auth/pkce-sign-in.js';
import { AuthSession, type AuthState } from '../../main/auth/session.js';
import type { TokenSet } from '../../main/auth/token-set.js';
import { KEYCHAIN_SERVICE, keychainAccount, openTokenStore, parseStoredTokenSet } from '../../main/auth/token-store.js';
import { startEmbeddedIssuer } from '@cloudtolocalllm/server/issuer/embedded-issuer';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARTIFACTS = join(ROOT, 'test-artifacts', 'desktop');
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const AUDIENCE = 'https://api.cloudtolocalllm.test';
const USER_NAME = 'browser.user@example.com';

/** Compares tokens without ever printing one. */
const fingerprint = (token: string | undefined): string | undefined =>
  token === undefined ? undefined : createHash('sha256').update(token).digest('hex').slice(0, 12);

function print(result: Record<string, unknown>): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

async function readKeychainEntry(client: { issuer: string; clientId: string }): Promise<TokenSet | undefined> {
  const keytar = (await import('keytar')).default;
  const json = await keytar.getPassword(KEYCHAIN_SERVICE, keychainAccount(client.issuer, client.clientId));
  return json === null ? undefined : parseStoredTokenSet(json, client);
}

async function keychainFlow(): Promise<Record<string, unknown>> {
  const started = Date.now();
  const result: Record<string, unknown> = {};
  // 30 s tokens are always inside the session's 60 s refresh margin: every accessToken() refreshes.
  const issuer = await startEmbeddedIssuer({ audience: AUDIENCE, accessTokenTtlSec: 30 });
  const client = { issuer: issuer.issuer, clientId: issuer.desktopClientId };
  const { chromium } = await import('playwright');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    // The app opens its store before it knows the issuer (see app-controller.ts): no client here.
    const store = await openTokenStore();
    result['store'] = { kind: store.kind, detail: store.detail };
    if (store.kind !== 'keychain') return result;

    const page = await browser.newPage();
    let browserOpened!: (url: URL) => void;
    const opened = new Promise<URL>((resolve) => (browserOpened = resolve));
    const session = new AuthSession({
      ...client,
      audience: AUDIENCE,
      store,
      openBrowser: async (url) => {
        await page.goto(url);
        browserOpened(new URL(url));
      },
      signInTimeoutMs: 20_000,
    });
    const states: AuthState[] = [];
    session.on('state', (state) => states.push(state));

    const signingIn = session.signIn();
    const authorizationUrl = await Promise.race([opened, signingIn.then(() => Promise.reject(new Error('signed in without the browser')))]);
    const redirectUri = new URL(authorizationUrl.searchParams.get('redirect_uri') ?? '');
    result['loginPage'] = {
      atIssuer: new URL(page.url()).origin === new URL(issuer.issuer).origin,
      title: await page.title(),
      heading: await page.locator('h1').textContent(),
      hasUserNameField: (await page.locator('input#username').count()) === 1,
      stateWhileWaiting: session.state,
    };
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'sign-in-login-page.png'), fullPage: true });

    await page.fill('#username', USER_NAME);
    await Promise.all([
      page.waitForURL((url) => url.origin === redirectUri.origin && url.pathname === redirectUri.pathname),
      page.click('button[value="sign-in"]'),
    ]);
    const user = await signingIn;
    const callback = new URL(page.url());
    result['callbackPage'] = {
      redirectUriIsLoopback: /^http:\/\/127\.0\.0\.1:\d+\/callback$/.test(redirectUri.href),
      hasCode: callback.searchParams.has('code'),
      heading: await page.locator('h1').textContent(),
    };
    await page.screenshot({ path: join(ARTIFACTS, 'sign-in-callback-page.png') });
    result['user'] = user;
    result['states'] = states;

    // What the keychain holds, read with keytar directly and through a fresh store (a restart).
    const signedIn = await readKeychainEntry(client);
    const reopened = await openTokenStore({ client });
    const loaded = await reopened.load();
    result['stored'] = {
      found: signedIn !== undefined,
      subject: signedIn?.subject,
      hasRefreshToken: Boolean(signedIn?.refreshToken),
      reopenedKind: reopened.kind,
      reopenedMatches: loaded !== undefined && JSON.stringify(loaded) === JSON.stringify(signedIn),
    };

    // A restart: a new session restores from the keychain and refreshes (the token is inside the margin).
    const restarted = new AuthSession({ ...client, audience: AUDIENCE, store: reopened, openBrowser: () => {} });
    const restore = await restarted.restore();
    const afterRestore = await readKeychainEntry(client);
    const accessToken = await restarted.accessToken();
    const afterAccess = await readKeychainEntry(client);
    result['refresh'] = {
      restoreState: restore.state,
      restoreRefreshed: restore.refreshed,
      accessTokenChanged: fingerprint(afterRestore?.accessToken) !== fingerprint(signedIn?.accessToken),
      refreshTokenRotated:
        afterRestore?.refreshToken !== undefined && fingerprint(afterRestore.refreshToken) !== fingerprint(signedIn?.refreshToken),
      secondRefreshRotated:
        afterAccess?.refreshToken !== undefined && fingerprint(afterAccess.refreshToken) !== fingerprint(afterRestore?.refreshToken),
      keychainHoldsHandedOutToken: fingerprint(afterAccess?.accessToken) === fingerprint(accessToken),
      subject: afterAccess?.subject,
    };

    const signOut = await restarted.signOut();
    let replay = 'accepted';
    try {
      if (afterAccess) await refresh(afterAccess);
    } catch (err) {
      replay = err instanceof AuthError ? err.code : String(err);
    }
    result['signOut'] = {
      revoked: signOut.revoked,
      cleared: signOut.cleared,
      errors: signOut.errors.map((err) => err.message),
      keychainEntryGone: (await readKeychainEntry(client)) === undefined,
      lastRefreshTokenAfterSignOut: replay,
    };
    result['ms'] = Date.now() - started;
    return result;
  } finally {
    await browser.close();
    await issuer.close();
  }
}

async function noKeychainFlow(): Promise<Record<string, unknown>> {
  const store = await openTokenStore();
  const result: Record<string, unknown> = { store: { kind: store.kind, detail: store.detail } };

  const issuer = await startEmbeddedIssuer({ audience: AUDIENCE });
  try {
    const session = new AuthSession({
      issuer: issuer.issuer,
      clientId: issuer.desktopClientId,
      audience: AUDIENCE,
      store,
      openBrowser: () => {},
      signInImpl: (o) => headlessSignIn({ issuer: o.issuer, clientId: o.clientId, audience: o.audience, username: 'no-keychain' }),
    });
    const user = await session.signIn();
    const stored = await store.load({ issuer: issuer.issuer, clientId: issuer.desktopClientId });
    result['signIn'] = { user, state: session.state, storedInMemory: stored?.subject === 'no-keychain' };
  } finally {
    await issuer.close();
  }
  return result;
}

const mode = process.argv[2];
try {
  if (mode === 'keychain') print(await keychainFlow());
  else if (mode === 'no-keychain') print(await noKeychainFlow());
  else throw new Error(`usage: keychain-sign-in-child.ts keychain|no-keychain, got ${String(mode)}`);
  // A keytar call stuck on a silent bus keeps a libuv worker busy forever: do not wait for it.
  process.exit(0);
} catch (err) {
  print({ error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  process.exit(1);
}
