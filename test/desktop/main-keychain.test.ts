/**
 * The BUILT desktop app with a real keychain: gnome-keyring in a D-Bus session of the test's
 * own, which outlives the app as a person's login session does. Sign in through Chromium, quit,
 * start again: the app is signed in and connected from the keychain, without a browser. Sign out
 * empties the keychain. The app talks to a cloud server this test runs (in-process runtime).
 *
 * Skipped without Chromium, dbus-run-session or gnome-keyring-daemon, except in CI (CI=true),
 * where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { KEYCHAIN_SERVICE } from '../../main/auth/token-store.js';
import { CHROMIUM_PATH, chromiumUnavailable } from '../browser.js';
import { startCloud, type Cloud } from '../cloud/cloud-harness.js';
import { PRODUCT_LINE, ROOT, signInFromTray, startSession, tempHome, type AppRun, type Session } from './app-harness.js';

const onPath = (command: string): boolean =>
  (process.env['PATH'] ?? '').split(delimiter).some((dir) => {
    if (!dir) return false;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
const missing = [...(chromiumUnavailable() ? [`Chromium (${CHROMIUM_PATH})`] : []), ...['dbus-run-session', 'gnome-keyring-daemon'].filter((c) => !onPath(c))];
if (missing.length > 0 && process.env['CI'] === 'true') {
  test('Chromium, dbus-run-session and gnome-keyring-daemon are installed (CI machines must have them)', () => assert.fail(`missing: ${missing.join(', ')}`));
}

/** A D-Bus session with an unlocked gnome-keyring, alive until stop(). */
async function startKeyringSession(home: string): Promise<{ address: string; stop(): Promise<void> }> {
  const script = 'printf %s pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; echo "BUS=$DBUS_SESSION_BUS_ADDRESS"; exec cat';
  const child: ChildProcess = spawn('dbus-run-session', ['--', 'sh', '-c', script], {
    env: { PATH: process.env['PATH'], HOME: home, XDG_DATA_HOME: join(home, '.local', 'share'), XDG_RUNTIME_DIR: home },
    detached: true,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /^BUS=(.+)$/m.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`the D-Bus session ended (${code}) before it started: ${out}`)));
  });
  return {
    address,
    stop: async () => {
      const ended = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end(); // cat ends, and dbus-run-session takes its daemons with it
      await ended;
    },
  };
}

/** The accounts the keychain holds for the app, read with keytar in the session (never a secret). */
function keychainAccounts(env: NodeJS.ProcessEnv): string[] {
  const code = `import('keytar').then(async ({ default: k }) => console.log(JSON.stringify((await k.findCredentials(${JSON.stringify(KEYCHAIN_SERVICE)})).map((c) => c.account))))`;
  const r = spawnSync(process.execPath, ['-e', code], { cwd: ROOT, env, encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`reading the keychain failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}

describe('the built desktop app with gnome-keyring: restart signed in, sign out forgets', { skip: missing.length ? `missing ${missing.join(', ')}; CI=true makes this a failure` : false, concurrency: false }, () => {
  let session: Session;
  let cloud: Cloud;
  let keyring: { address: string; stop(): Promise<void> };
  let home: string;
  let app: AppRun;
  const connected = `${PRODUCT_LINE}\nConnected: connected to 127.0.0.1:`;

  before(async () => {
    home = tempHome();
    [session, cloud, keyring] = await Promise.all([startSession(), startCloud(), startKeyringSession(home)]);
  });
  after(async () => {
    await session?.close();
    await keyring?.stop();
    await cloud?.close();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  // The same home and session bus each time: a restart of the app, not of the login session.
  const launch = (): AppRun =>
    (app = session.launch({ home, settings: { cloudServerUrl: cloud.url, ollamaUrl: session.emulator.url }, env: { DBUS_SESSION_BUS_ADDRESS: keyring.address } }));
  const keychainEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'], HOME: home, DBUS_SESSION_BUS_ADDRESS: keyring.address });

  test('signs in through the browser; the tokens go to the keychain, and the app says so', async () => {
    launch();
    await app.waitForTray((t) => t.menu !== null && t.toolTip === `${PRODUCT_LINE}\nSigned out: sign in to connect your Ollama`, 'the signed-out tray');
    const since = app.mark();
    await signInFromTray(app, session.browser, 'hedy', (tip) => tip.startsWith(connected));
    assert.deepEqual(keychainAccounts(keychainEnv()), [`${cloud.server.issuer} ${cloud.server.embeddedIssuer!.desktopClientId}`]);

    await app.click('settings');
    await app.waitForWindow('settings', 'loaded', since);
    await app.inWindow('settings', 'wait', { selector: 'body[data-ready="true"]' });
    assert.match(String(await app.inWindow('settings', 'text', { selector: '#detail-keychain' })), /Secret Service keyring/);
    assert.deepEqual(await app.quit(), { code: 0, signal: null });
    assert.deepEqual(app.problems(), []);
  });

  test('the next start is signed in and connected from the keychain, without a browser', async () => {
    launch();
    const tray = await app.waitForTray((t) => t.toolTip.startsWith(connected), 'the connected tray');
    assert.ok(tray.menu?.some((i) => i.id === 'sign-out' && i.label === 'Sign out (hedy)'));
    assert.ok(!app.events.some((e) => e.event === 'open-external'), 'no browser was needed');
  });

  test('sign-out empties the keychain; nothing of the tokens is in the log', async () => {
    const since = app.mark();
    await app.click('sign-out');
    await app.waitForTray((t) => t.toolTip === `${PRODUCT_LINE}\nSigned out: sign in to connect your Ollama`, 'the signed-out tray', since);
    assert.deepEqual(keychainAccounts(keychainEnv()), []);
    assert.deepEqual(await app.quit(), { code: 0, signal: null });
    assert.doesNotMatch(app.logText(), /eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}/);
    assert.deepEqual(app.problems(), []);
  });
});
