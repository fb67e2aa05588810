/**
 * Sign-in as a person does it, end to end: Debian's Chromium (driven by Playwright) goes through
 * the embedded issuer's login page while AuthSession.signIn() waits on the loopback redirect,
 * and the tokens land in a real keychain (gnome-keyring in its own D-Bus session), are read
 * back, refreshed with rotation and signed out. And without a keychain: the token store falls
 * back to memory and says so.
 *
 * keytar reaches the keyring over the D-Bus session bus of its own process, so each case runs
 * keychain-sign-in-child.ts in a child process with the bus it needs, and checks the JSON line
 * it prints. Skipped when Chromium, dbus-run-session or gnome-keyring-daemon are missing, except
 * in CI (CI=true), where that is a failure.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = 'test/desktop/keychain-sign-in-child.ts';
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const SCREENSHOT = join(ROOT, 'test-artifacts', 'desktop', 'sign-in-login-page.png');
const NO_KEYCHAIN_DETAIL =
  /^No keychain answered \((.+)\): you stay signed in only until CloudToLocalLLM quits\. Install and unlock a Secret Service \(GNOME Keyring or KWallet\) to stay signed in\.$/;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command: string): boolean {
  return (process.env['PATH'] ?? '').split(delimiter).some((dir) => dir !== '' && executable(join(dir, command)));
}

const missing = [
  ...(executable(CHROMIUM) ? [] : [`Chromium (${CHROMIUM})`]),
  ...['dbus-run-session', 'gnome-keyring-daemon'].filter((command) => !onPath(command)),
];
if (missing.length > 0 && process.env['CI'] === 'true') {
  test('Chromium, dbus-run-session and gnome-keyring-daemon are installed (CI machines must have them)', () =>
    assert.fail(`missing: ${missing.join(', ')}`));
}
const skipBrowser = missing.length > 0 ? `missing ${missing.join(', ')}; CI=true makes this a failure` : false;

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  result: Record<string, any> | undefined;
  stderr: string;
  ms: number;
}

/**
 * Runs a command in its own process group; on timeout that group (and only it) is killed.
 * `onResult` runs as soon as the child has printed its result line.
 */
function runChild(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, onResult?: () => void): Promise<ChildRun> {
  const started = Date.now();
  const child = spawn(command, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const before = stdout;
    stdout += chunk.toString();
    if (!/^RESULT /m.test(before) && /^RESULT .*\n/m.test(stdout)) onResult?.();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      resolve({ code, signal, result: line ? JSON.parse(line.slice('RESULT '.length)) : undefined, stderr, ms: Date.now() - started });
    });
  });
}

/** Runs the child under a node with tsx, with its own home so no real keyring is touched. */
function childEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DBUS_SESSION_BUS_ADDRESS', 'DISPLAY', 'WAYLAND_DISPLAY', 'GNOME_KEYRING_CONTROL', 'NODE_TEST_CONTEXT']) {
    delete env[name];
  }
  return {
    ...env,
    HOME: home,
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_CACHE_HOME: join(home, 'cache'),
    XDG_RUNTIME_DIR: home,
    NODE_BIN: process.execPath,
    ...extra,
  };
}

function explain(run: ChildRun): string {
  return `exit ${run.code ?? run.signal} after ${run.ms} ms; result ${JSON.stringify(run.result)}; stderr:\n${run.stderr.slice(-3000)}`;
}

const homes: string[] = [];
function tempHome(): string {
  const home = mkdtempSync(join(tmpdir(), 'ctll-keychain-'));
  homes.push(home);
  return home;
}
after(() => {
  for (const home of homes) rmSync(home, { recursive: true, force: true });
});

describe('sign-in in Chromium with the tokens in gnome-keyring', { skip: skipBrowser }, () => {
  test('signs in through the login page, stores, reads back, refreshes with rotation and signs out', { timeout: 45_000 }, async () => {
    const script = `printf %s pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; exec "$NODE_BIN" --import tsx ${CHILD} keychain`;
    const run = await runChild('dbus-run-session', ['--', 'sh', '-c', script], childEnv(tempHome()), 40_000);
    assert.equal(run.code, 0, explain(run));
    const r = run.result;
    assert.ok(r, explain(run));

    // A keyring that did not answer within the probe's 3 s would have given a memory store.
    assert.equal(r['store'].kind, 'keychain', `the keyring answered: ${r['store'].detail}`);
    assert.match(r['store'].detail, /Secret Service keyring .* stay signed in when CloudToLocalLLM restarts/);

    assert.deepEqual(r['loginPage'], {
      atIssuer: true,
      title: 'Sign in',
      heading: 'Sign in to CloudToLocalLLM desktop app',
      hasUserNameField: true,
      stateWhileWaiting: 'signing-in',
    });
    assert.deepEqual(r['callbackPage'], { redirectUriIsLoopback: true, hasCode: true, heading: 'Signed in' });
    assert.deepEqual(r['user'], { subject: 'browser.user@example.com', name: 'browser.user@example.com' });
    assert.deepEqual(r['states'], ['signing-in', 'signed-in']);

    assert.deepEqual(r['stored'], {
      found: true,
      subject: 'browser.user@example.com',
      hasRefreshToken: true,
      reopenedKind: 'keychain',
      reopenedMatches: true,
    });
    assert.deepEqual(r['refresh'], {
      restoreState: 'signed-in',
      restoreRefreshed: true,
      accessTokenChanged: true,
      refreshTokenRotated: true,
      secondRefreshRotated: true,
      keychainHoldsHandedOutToken: true,
      subject: 'browser.user@example.com',
    });
    assert.deepEqual(r['signOut'], {
      revoked: true,
      cleared: true,
      errors: [],
      keychainEntryGone: true,
      lastRefreshTokenAfterSignOut: 'refresh-failed',
    });

    const png = readFileSync(SCREENSHOT);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG screenshot of the login page');
    assert.ok(png.length > 5_000, `screenshot of ${png.length} bytes`);
  });
});

describe('sign-in without a keychain', { concurrency: true }, () => {
  let silentBus: net.Server | undefined;
  after(() => silentBus?.close());

  async function noKeychain(env: NodeJS.ProcessEnv, onResult?: () => void): Promise<{ run: ChildRun; why: string }> {
    const run = await runChild(process.execPath, ['--import', 'tsx', CHILD, 'no-keychain'], env, 20_000, onResult);
    assert.equal(run.code, 0, explain(run));
    const r = run.result;
    assert.ok(r, explain(run));
    assert.equal(r['store'].kind, 'memory');
    const match = NO_KEYCHAIN_DETAIL.exec(r['store'].detail);
    assert.ok(match, r['store'].detail);
    assert.deepEqual(r['signIn'], {
      user: { subject: 'no-keychain', name: 'no-keychain' },
      state: 'signed-in',
      storedInMemory: true,
    });
    return { run, why: match[1] ?? '' };
  }

  // "At once": the fallback comes from keytar's own error, not from the probe's timer running out.
  test('no D-Bus session bus at all: keytar fails at once and the store falls back to memory', async () => {
    const { why } = await noKeychain(childEnv(tempHome()));
    assert.notEqual(why, 'no answer within 3 s');
    assert.match(why, /D-Bus|X11|connect/i);
  });

  test('DBUS_SESSION_BUS_ADDRESS pointing nowhere: the same, at once', async () => {
    const home = tempHome();
    const { why } = await noKeychain(childEnv(home, { DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(home, 'no-bus-here')}` }));
    assert.notEqual(why, 'no answer within 3 s');
    assert.match(why, /No such file or directory|connect/i);
  });

  test('a session bus that never answers: keytar hangs, the probe gives up after 3 s', async () => {
    const home = tempHome();
    const socket = join(home, 'silent-bus');
    // Accepts the connection and reads, but never speaks D-Bus: keytar waits on it for as long as
    // it stays open, and so does the child's exit (libuv joins its worker threads at exit, even
    // on process.exit). Hanging up once the child has reported lets it exit.
    const connections = new Set<net.Socket>();
    silentBus = net.createServer((connection) => {
      connections.add(connection);
      connection.resume();
    });
    await new Promise<void>((resolve) => silentBus?.listen(socket, resolve));
    const hangUp = (): void => {
      for (const connection of connections) connection.destroy();
    };
    const { why } = await noKeychain(childEnv(home, { DBUS_SESSION_BUS_ADDRESS: `unix:path=${socket}` }), hangUp);
    // The probe's timer ended the wait (its own message), while keytar sat on the silent bus.
    assert.equal(why, 'no answer within 3 s');
    assert.ok(connections.size > 0, 'keytar connected to the silent bus');
  });
});
