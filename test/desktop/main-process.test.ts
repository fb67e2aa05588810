/**
 * The BUILT desktop app (dist/main/main.js from `npm run build:desktop`) run as a person runs it
 * from source with no cloud server configured, under Node with the Electron double in place of
 * Electron (which cannot run here): tray-first start, the icon and tooltip of each state, every
 * tray menu item, the Settings and About windows (real pages and the real preload in Chromium),
 * the windows' hardening, sign-in through Chromium against the local stack's embedded issuer to
 * Connected, sign-out, a browser that cannot be opened, a second instance, and Quit leaving
 * nothing running. One app process goes through it all, in order.
 *
 * Skipped without Chromium, except in CI (CI=true), where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { chromiumUnavailable } from '../browser.js';
import {
  localStackUrls,
  portClosed,
  PRODUCT_LINE,
  signInThroughBrowser,
  startSession,
  tempHome,
  userDataDir,
  type AppRun,
  type BuiltApp,
  type MenuItemView,
  type Session,
  type TrayView,
} from './app-harness.js';
import { DESKTOP_API_METHODS } from './renderer-harness.js';

const unavailable = chromiumUnavailable();
if (unavailable && process.env['CI'] === 'true') {
  test('Chromium is installed (CI machines must have it)', () => assert.fail(unavailable));
}

const menuOf = (tray: TrayView | undefined): MenuItemView[] => tray?.menu ?? [];
const item = (tray: TrayView | undefined, id: string): MenuItemView | undefined => menuOf(tray).find((i) => i.id === id);
const tooltip = (line: string): string => `${PRODUCT_LINE}\n${line}`;
const JWT = /eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}/;

describe('the built desktop app from source, no cloud server (local stack, in-process)', { skip: unavailable, concurrency: false }, () => {
  let session: Session;
  let built: BuiltApp;
  let home: string;
  let app: AppRun;
  let stack: { api: string; issuer: string } | undefined;
  let token: string;

  before(async () => {
    session = await startSession();
    built = session.built;
    home = tempHome();
    app = session.launch({ home, settings: { ollamaUrl: session.emulator.url }, env: { CTLL_RUNTIME: 'process' } });
  });
  after(async () => {
    await session?.close();
    // The home is shared with the second instance: removed here, once both are gone.
    if (home) rmSync(home, { recursive: true, force: true });
  });

  test('starts minimised to the tray: no window, the signed-out icon and tooltip', async () => {
    // Started: the local stack is up (the app starts it at once, to know where to sign in).
    await app.waitForLog(/cloud server listening/, 'the local stack listening');
    const tray = app.tray();
    assert.ok(tray);
    assert.equal(tray.toolTip, tooltip('Signed out: sign in to connect your Ollama'));
    assert.equal(tray.image.path, join(built.root, 'assets', 'tray', 'linux', 'signed-out-22.png'));
    assert.deepEqual({ empty: tray.image.empty, size: tray.image.size, scales: tray.image.scales }, { empty: false, size: { width: 22, height: 22 }, scales: [1, 2] });
    assert.deepEqual(await app.windows(), [], 'no window at start');
    const state = await app.command<{ dock: unknown; lock: boolean }>('state');
    assert.equal(state.dock, null, 'no dock on Linux');
    assert.equal(state.lock, true, 'the single-instance lock is held');
  });

  test('the tray menu: status line, Show, Settings…, About, Sign in…, Open logs, Quit', () => {
    const menu = menuOf(app.tray());
    assert.deepEqual(
      menu.map((i) => [i.id, i.type === 'separator' ? '—' : i.label, i.enabled]),
      [
        ['status', 'Signed out: sign in to connect your Ollama', false],
        [null, '—', true],
        ['toggle', 'Show', true],
        ['settings', 'Settings…', true],
        ['about', 'About', true],
        [null, '—', true],
        ['sign-in', 'Sign in…', true],
        ['logs', 'Open logs', true],
        [null, '—', true],
        ['quit', 'Quit', true],
      ],
    );
    assert.equal(item(app.tray(), 'quit')?.role, 'quit', 'Quit is the quit role (Electron runs app.quit() and ignores a click)');
  });

  test('Show opens the Settings window and the menu then says Hide; Hide hides it and the menu says Show', async () => {
    let since = app.mark();
    await app.click('toggle');
    const shown = await app.waitForWindow('settings', 'shown', since);
    assert.equal(item(app.trayBefore(shown.index + 1), 'toggle')?.label, 'Hide', 'the menu was rebuilt when the window appeared');
    since = app.mark();
    await app.click('toggle');
    const hidden = await app.waitForWindow('settings', 'hidden', since);
    assert.equal(item(app.trayBefore(hidden.index + 1), 'toggle')?.label, 'Show', 'the menu was rebuilt when the window went');
    since = app.mark();
    await app.click('toggle');
    const again = await app.waitForWindow('settings', 'shown', since);
    assert.equal(again.id, shown.id, 'the same window comes back');
  });

  test('the Settings window: the page title wins, secure preferences, the real preload gives exactly window.ctll', async () => {
    const [win] = await app.windows();
    assert.ok(win);
    assert.equal(win.url, pathToFileURL(join(built.root, 'dist', 'renderer', 'settings.html')).href);
    assert.equal(win.title, 'CloudToLocalLLM settings', "the page's <title>");
    assert.deepEqual(win.webPreferences, {
      preload: join(built.root, 'dist', 'main', 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
    });
    assert.equal(win.options['show'], false, 'shown once ready, without a flash');

    // A blank page of the same kind (file:, a secure context) has the browser's own globals.
    const blankFile = join(home, 'blank.html');
    writeFileSync(blankFile, '<!doctype html><title>blank</title>');
    const blank = await session.browser.newPage();
    await blank.goto(pathToFileURL(blankFile).href);
    const baseline = new Set((await blank.evaluate('Object.getOwnPropertyNames(window)')) as string[]);
    await blank.close();
    const added = ((await app.inWindow<string[]>('settings', 'evaluate', { expression: 'Object.getOwnPropertyNames(window)' })) ?? []).filter((n) => !baseline.has(n));
    assert.deepEqual(added, ['ctll'], 'the page sees the preload API and nothing else');
    assert.deepEqual(await app.inWindow('settings', 'evaluate', { expression: 'Object.keys(window.ctll).sort()' }), [...DESKTOP_API_METHODS].sort());
    assert.equal(await app.inWindow('settings', 'evaluate', { expression: 'Object.isFrozen(window.ctll)' }), true);
    assert.equal(await app.inWindow('settings', 'evaluate', { expression: 'typeof require + typeof process + typeof Buffer' }), 'undefinedundefinedundefined');

    // The form shows the main process's answers over the real IPC.
    await app.inWindow('settings', 'wait', { selector: '#settings-form[aria-busy="false"]' });
    assert.equal(await app.inWindow('settings', 'evaluate', { expression: 'document.querySelector("#ollamaUrl").value' }), session.emulator.url);
    assert.match(String(await app.inWindow('settings', 'text', { selector: '#status-line' })), /sign in to connect your Ollama/);
  });

  test('About shows what runs, from the main process; its links open in the system browser', async () => {
    const since = app.mark();
    await app.click('about');
    await app.waitForWindow('about', 'loaded', since);
    await app.inWindow('about', 'wait', { selector: 'body[data-ready="true"]' });
    const about = (await app.windows()).find((w) => w.name === 'about');
    assert.equal(about?.title, 'About CloudToLocalLLM');
    assert.equal(about?.webPreferences['sandbox'], true);
    assert.equal(await app.inWindow('about', 'text', { selector: '#about-version' }), '0.1.0');
    assert.match(String(await app.inWindow('about', 'text', { selector: '#about-electron' })), /^\d+\.\d+\.\d+$/);
    const href = String(await app.inWindow('about', 'evaluate', { expression: 'document.querySelector("#about-links a").href' }));
    const clicked = app.mark();
    await app.inWindow('about', 'click', { selector: '#about-links li:first-child a' });
    const opened = await app.waitForBrowser(clicked);
    assert.deepEqual(opened, { event: 'open-external', url: href, ok: true });
  });

  test('the windows refuse navigation, new windows, permissions, and IPC from anything but our pages', async () => {
    let since = app.mark();
    await app.inWindow('settings', 'evaluate', { expression: 'location.href = "https://example.com/elsewhere"; 1' });
    const nav = await app.waitFor((e) => (e.event === 'will-navigate' ? e : undefined), 'will-navigate', { since });
    assert.equal(nav['prevented'], true);
    assert.match(String(await app.inWindow('settings', 'evaluate', { expression: 'location.href' })), /settings\.html$/);

    since = app.mark();
    await app.inWindow('settings', 'evaluate', { expression: 'window.open("file:///etc/passwd"); window.open("https://example.com/new-window"); 1' });
    const opened = await app.waitForBrowser(since);
    assert.equal(opened.url, 'https://example.com/new-window', 'an http(s) window.open goes to the system browser');
    const opens = app.events.slice(since).filter((e) => e.event === 'window-open');
    assert.deepEqual(opens.map((e) => [e['url'], e['action']]), [['file:///etc/passwd', 'deny'], ['https://example.com/new-window', 'deny']]);
    assert.ok(!app.events.slice(since).some((e) => e.event === 'open-external' && e['url'] === 'file:///etc/passwd'), 'a file: URL is not opened');

    assert.deepEqual(await app.command('permission', { window: 'settings', permission: 'notifications' }), { handled: true, granted: false });

    const ours = pathToFileURL(join(built.root, 'dist', 'renderer', 'settings.html')).href;
    const fromOurs = await app.command<{ ok: boolean; value?: { ollamaUrl?: string } }>('invoke-as', { channel: 'settings:get', frameUrl: ours });
    assert.equal(fromOurs.ok && fromOurs.value?.ollamaUrl, session.emulator.url);
    for (const frameUrl of ['https://evil.example/', 'file:///etc/passwd', `${pathToFileURL(join(built.root, 'dist', 'renderer')).href}/../../secret.html`]) {
      const refused = await app.command<{ ok: boolean; error?: string }>('invoke-as', { channel: 'settings:get', frameUrl });
      assert.deepEqual(refused, { ok: false, error: "Error invoking remote method 'settings:get': Error: refused: this IPC call does not come from a CloudToLocalLLM window" }, frameUrl);
    }
  });

  test('Open logs opens the folder of the log file', async () => {
    const since = app.mark();
    await app.click('logs');
    const opened = await app.waitFor((e) => (e.event === 'open-path' ? e : undefined), 'the log folder opened', { since });
    assert.equal(opened['path'], join(userDataDir(home), 'logs'));
    assert.equal(opened['error'], '', 'the folder exists');
  });

  test('closing every window keeps the app in the tray', async () => {
    for (const name of ['about', 'settings']) assert.deepEqual(await app.inWindow(name, 'close'), { closed: true });
    assert.deepEqual(await app.windows(), []);
    const state = await app.command<{ tray: unknown }>('state');
    assert.ok(state.tray, 'the tray is still there');
    assert.ok(app.running);
  });

  test('sign-in from source with no cloud server: the browser, the local stack, Connected', async () => {
    const since = app.mark();
    await app.click('sign-in');
    const opened = await app.waitForBrowser(since);
    assert.equal(opened.ok, true);
    const waiting = await app.waitForTray((t) => t.toolTip === tooltip('Connecting: signing in (finish in your browser)'), 'the signing-in tray', since);
    assert.match(waiting.image.path ?? '', /connecting-22\.png$/);
    stack = localStackUrls(app.logText());
    assert.ok(stack, `the local stack's URLs are in the log:\n${app.logText()}`);
    assert.equal(new URL(opened.url).origin, stack.issuer, "the sign-in page is the local stack's embedded issuer");

    await signInThroughBrowser(session.browser, opened.url, 'ada');
    const connected = await app.waitForTray((t) => t.toolTip === tooltip('Connected: connected to this computer'), 'the connected tray', since);
    assert.match(connected.image.path ?? '', /assets\/tray\/linux\/connected-22\.png$/);
    assert.equal(item(connected, 'sign-out')?.label, 'Sign out (ada)');
    assert.equal(item(connected, 'sign-in'), undefined);
  });

  test("a client in the cloud reaches this computer's Ollama; the local stack serves the web client", async () => {
    assert.ok(stack);
    const config = (await (await fetch(`${stack.api}/api/config`)).json()) as { issuer: string; audience: string; desktopClientId: string };
    token = (await headlessSignIn({ issuer: config.issuer, clientId: config.desktopClientId, audience: config.audience, username: 'ada' })).accessToken;
    const tags = await fetch(`${stack.api}/ollama/api/tags`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(tags.status, 200);
    assert.ok(((await tags.json()) as { models: unknown[] }).models.length > 0);
    assert.ok(session.emulator.requests.some((r) => r.path === '/api/tags'), 'the request reached the Ollama on this computer');

    const landing = await fetch(`${stack.api}/`);
    assert.equal(landing.status, 200, 'the web client is served at /');
    assert.match(landing.headers.get('content-type') ?? '', /^text\/html/);
  });

  test('signing in again while signed in keeps the one bridge', async () => {
    const since = app.mark();
    await app.click('settings');
    await app.waitForWindow('settings', 'loaded', since);
    const bridgesBefore = app.logText().match(/bridge connecting/g)?.length ?? 0;
    assert.ok(bridgesBefore >= 1);
    assert.deepEqual(await app.inWindow('settings', 'evaluate', { expression: 'window.ctll.signIn()' }), { ok: true });
    assert.equal(app.logText().match(/bridge connecting/g)?.length ?? 0, bridgesBefore, 'no second bridge was started');
    assert.equal(app.tray()?.toolTip, tooltip('Connected: connected to this computer'));
  });

  test('Use from other apps through the built app: the endpoint, copy through the main clipboard, a key made in the window works and revoked stops', async () => {
    assert.ok(stack);
    const endpoint = `${stack.api}/ollama`;
    const evaluate = <T>(expression: string): Promise<T> => app.inWindow<T>('settings', 'evaluate', { expression });
    const until = async (expression: string, what: string): Promise<void> => {
      for (let i = 0; !(await evaluate<boolean>(expression)); i++) {
        if (i > 250) assert.fail(`the Settings window never showed ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    await until(`document.getElementById('ollama-base-url').textContent === ${JSON.stringify(endpoint)}`, 'the endpoint');
    // The page may not write the clipboard itself (every permission is denied), so main does.
    assert.deepEqual(await app.command('permission', { window: 'settings', permission: 'clipboard-sanitized-write' }), { handled: true, granted: false });
    await evaluate(`document.getElementById('copy-openai-url').click(), 1`);
    await until(`document.getElementById('clients-message').textContent === 'OpenAI base URL copied.'`, 'the copy done');
    assert.deepEqual(await app.command('clipboard'), { text: `${endpoint}/v1` });

    await evaluate(`(document.getElementById('key-name').value = 'built-app', document.getElementById('create-key').click(), 1)`);
    await until(`!document.getElementById('new-key').hidden`, 'the new key');
    const key = await evaluate<string>(`document.getElementById('new-key-secret').textContent`);
    assert.match(key, /^ctll_[\w-]{78}$/);
    assert.ok(!app.logText().includes(key.slice(5)), 'the key is not in the log');
    const tags = await fetch(`${endpoint}/api/tags`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(tags.status, 200, 'the key made in the window works on the endpoint');
    await tags.body?.cancel();

    await evaluate(`(document.getElementById('close-new-key').click(), document.querySelector('#key-list button[aria-label="Revoke built-app"]').click(), document.querySelector('#key-list button[data-confirm]').click(), 1)`);
    await until(`document.getElementById('clients-message').textContent === 'Key "built-app" revoked.'`, 'the key revoked');
    let status = 0;
    for (const started = performance.now(); performance.now() - started < 2_000; ) {
      const refused = await fetch(`${endpoint}/api/tags`, { headers: { authorization: `Bearer ${key}` } });
      status = refused.status;
      await refused.body?.cancel();
      if (status === 401) break;
    }
    assert.equal(status, 401, 'within 2 s of the revoke the key is refused');
  });

  test('sign-out stops the proxy and forgets the sign-in', async () => {
    assert.ok(stack);
    const since = app.mark();
    await app.click('sign-out');
    const out = await app.waitForTray((t) => t.toolTip === tooltip('Signed out: sign in to connect your Ollama'), 'the signed-out tray', since);
    assert.match(out.image.path ?? '', /signed-out-22\.png$/);
    assert.equal(item(out, 'sign-in')?.label, 'Sign in…');
    const status = (await (await fetch(`${stack.api}/api/proxy/status`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string; bridgeConnected: boolean };
    assert.deepEqual({ status: status.status, bridgeConnected: status.bridgeConnected }, { status: 'stopped', bridgeConnected: false });
  });

  test('when no browser can be opened, sign-in fails at once and says why', async () => {
    await app.command('shell', { openExternalFails: 'Failed to open: no application is registered for https URLs' });
    try {
      const since = app.mark();
      await app.click('sign-in');
      const opened = await app.waitForBrowser(since);
      assert.equal(opened.ok, false);
      const failed = await app.waitForTray((t) => t.toolTip.startsWith(tooltip('Error: sign-in failed: ')), 'the sign-in failure in the tray', since);
      assert.equal(failed.toolTip, tooltip('Error: sign-in failed: Could not open the browser: Failed to open: no application is registered for https URLs.'));
      assert.match(failed.image.path ?? '', /error-22\.png$/);
      assert.equal(item(failed, 'sign-in')?.label, 'Sign in…', 'the person can try again');
      assert.deepEqual(app.problems().filter((p) => p.startsWith('unhandled')), [], 'no rejection went unhandled');
    } finally {
      await app.command('shell', {});
    }
  });

  test("a second instance shows the first one's window and exits", async () => {
    for (const w of await app.windows()) await app.inWindow(String(w.name), 'close');
    const since = app.mark();
    const second = session.launch({ home, args: ['--from-second-launch'] });
    assert.deepEqual(await second.exited, { code: 0, signal: null });
    assert.ok(second.events.some((e) => e.event === 'lock' && e['held'] === false), 'the second did not get the lock');
    assert.ok(!second.events.some((e) => e.event === 'ready' || e.event === 'tray'), 'the second made no tray');
    const notified = await app.waitFor((e) => (e.event === 'second-instance' ? e : undefined), 'the second-instance event', { since });
    assert.ok((notified['argv'] as string[]).includes('--from-second-launch'));
    await app.waitForWindow('settings', 'shown', since);
  });

  test('Quit ends the app with nothing left running: the stop finished, no port, no process', async () => {
    assert.ok(stack);
    const since = app.mark();
    const exit = await app.quit();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(app.events.slice(since).some((e) => e.event === 'before-quit'));
    assert.match(app.logText(), /quit: the bridge, the proxy and the local stack are stopped/);
    assert.deepEqual(await app.leftoverProcesses(), [], 'no process of the app is left');
    assert.equal(await portClosed(stack.api), true, 'the API port is closed');
    assert.equal(await portClosed(stack.issuer), true, "the issuer's port is closed");
    assert.doesNotMatch(app.logText(), JWT, 'no token in the log');
    assert.deepEqual(app.problems(), [], 'nothing went wrong on the way');
  });
});
