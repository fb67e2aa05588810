/**
 * The BUILT desktop app on each platform's branch (the Electron double reports the platform the
 * app asks for): start at login through the Settings window, written the platform's way, read
 * back, turned off; the tray icons and window icon each platform uses; no Dock icon on macOS;
 * "Start minimized" off and a login start; and the packaged layout of electron-builder.yml, which
 * ships no local stack. The app talks to a cloud server this test runs (in-process runtime).
 *
 * Skipped without Chromium, except in CI (CI=true), where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromiumUnavailable } from '../browser.js';
import { startCloud, type Cloud } from '../cloud/cloud-harness.js';
import { launchApp, packagedLayout, PRODUCT_LINE, startSession, tempHome, type AppRun, type BuiltApp, type LaunchOptions, type Platform, type Session } from './app-harness.js';

const unavailable = chromiumUnavailable();
if (unavailable && process.env['CI'] === 'true') {
  test('Chromium is installed (CI machines must have it)', () => assert.fail(unavailable));
}

describe('start at login, icons and the packaged layout on each platform', { skip: unavailable, concurrency: true }, () => {
  let session: Session;
  let built: BuiltApp;
  let cloud: Cloud;
  let packaged: { run?: AppRun; home?: string } = {};

  before(async () => {
    [session, cloud] = await Promise.all([startSession(), startCloud()]);
    built = session.built;
  });
  after(async () => {
    await packaged.run?.kill();
    if (packaged.home) rmSync(packaged.home, { recursive: true, force: true });
    await session?.close();
    await cloud?.close();
  });

  const launch = (options: Partial<LaunchOptions> & { platform: Platform }): AppRun => session.launch({ settings: { cloudServerUrl: cloud.url }, ...options });

  const signedOut = (run: AppRun): Promise<unknown> =>
    run.waitForTray((t) => t.menu !== null && t.toolTip === `${PRODUCT_LINE}\nSigned out: sign in to connect your Ollama`, 'the signed-out tray');

  /** As a person does it: Settings… from the tray, the checkbox, Save, and the window closed. */
  async function setStartAtLogin(run: AppRun, on: boolean): Promise<void> {
    await openSettings(run);
    await run.inWindow('settings', 'check', { selector: '#startAtLogin', value: on });
    await run.inWindow('settings', 'click', { selector: '#save' });
    await run.inWindow('settings', 'wait', { selector: '#form-message[data-kind="ok"]' });
    await run.inWindow('settings', 'close');
  }

  /** What the Settings window shows for start at login (the OS's state, read back). */
  async function shownStartAtLogin(run: AppRun): Promise<boolean> {
    await openSettings(run);
    const checked = await run.inWindow<boolean>('settings', 'evaluate', { expression: 'document.querySelector("#startAtLogin").checked' });
    await run.inWindow('settings', 'close');
    return checked;
  }

  async function openSettings(run: AppRun): Promise<void> {
    const since = run.mark();
    await run.click('settings');
    await run.waitForWindow('settings', 'loaded', since);
    await run.inWindow('settings', 'wait', { selector: 'body[data-ready="true"]' });
  }

  async function loginItems(run: AppRun): Promise<Record<string, Record<string, unknown>>> {
    return (await run.command<{ loginItems: Record<string, Record<string, unknown>> }>('state')).loginItems;
  }

  test('Linux from source: an XDG autostart entry that starts this app (its folder, --hidden), read back, removed', async () => {
    const run = launch({ platform: 'linux' });
    await signedOut(run);
    const entry = join(run.home, '.config', 'autostart', 'cloudtolocalllm.desktop');
    await setStartAtLogin(run, true);
    const exec = /^Exec=(.*)$/m.exec(readFileSync(entry, 'utf8'))?.[1];
    assert.equal(exec, `${process.execPath} ${built.root} --hidden`, 'Electron with the app folder, so a login start opens this app');
    assert.equal(await shownStartAtLogin(run), true);
    assert.deepEqual(await loginItems(run), {}, 'Linux has no Electron login items; only the entry');
    await setStartAtLogin(run, false);
    assert.equal(existsSync(entry), false);
    assert.equal(await shownStartAtLogin(run), false);
    assert.deepEqual(await run.quit(), { code: 0, signal: null });
    assert.deepEqual(run.problems(), []);
  });

  test('Windows: a Run entry with the app folder and --hidden; it reads back on; turning it off removes it', async () => {
    const run = launch({ platform: 'win32' });
    const tray = (await signedOut(run)) as { image: { path: string; empty: boolean } };
    assert.equal(tray.image.path, join(built.root, 'assets', 'tray', 'windows', 'signed-out.ico'));
    assert.equal(tray.image.empty, false, 'Windows decodes the .ico');
    await setStartAtLogin(run, true);
    assert.equal(await shownStartAtLogin(run), true, 'read back with the same arguments it was written with');
    assert.deepEqual((await loginItems(run))['windowsRun'], { 'electron.app.CloudToLocalLLM': `"${process.execPath}" "${built.root}" --hidden` });
    await setStartAtLogin(run, false);
    assert.deepEqual((await loginItems(run))['windowsRun'], {}, 'turned off');
    assert.equal(await shownStartAtLogin(run), false);
    const icon = (run.events.find((e) => e.event === 'window' && e['action'] === 'created')) as { options?: { icon?: string } } | undefined;
    assert.equal(icon?.options?.icon, join(built.root, 'assets', 'icon.ico'), 'the window icon is the .ico');
    assert.deepEqual(await run.quit(), { code: 0, signal: null });
    assert.deepEqual(run.problems(), []);
  });

  test('macOS: no Dock icon, template tray icons, a login item read back and removed', async () => {
    const run = launch({ platform: 'darwin' });
    const tray = (await signedOut(run)) as { image: { path: string; template: boolean; scales: number[] } };
    assert.equal(tray.image.path, join(built.root, 'assets', 'tray', 'macos', 'signed-outTemplate.png'));
    assert.deepEqual([tray.image.template, tray.image.scales], [true, [1, 2]], 'a template image with its @2x');
    assert.deepEqual((await run.command<{ dock: unknown }>('state')).dock, { hidden: true });
    await setStartAtLogin(run, true);
    assert.deepEqual((await loginItems(run))['macosServices'], { mainAppService: true });
    assert.equal(await shownStartAtLogin(run), true);
    await setStartAtLogin(run, false);
    assert.deepEqual((await loginItems(run))['macosServices'], { mainAppService: false });
    assert.deepEqual(await run.quit(), { code: 0, signal: null });
    assert.deepEqual(run.problems(), []);
  });

  test('with "Start minimized" off the Settings window opens at start, except for a login start', async () => {
    const settings = { cloudServerUrl: cloud.url, startMinimized: false };
    const shown = launch({ platform: 'linux', settings });
    await shown.waitForWindow('settings', 'shown');
    assert.deepEqual(await shown.quit(), { code: 0, signal: null });

    for (const login of [
      launch({ platform: 'linux', settings, args: ['--hidden'] }),
      launch({ platform: 'win32', settings, args: ['--hidden'] }),
      launch({ platform: 'darwin', settings, env: { CTLL_DOUBLE_OPENED_AT_LOGIN: '1' } }),
    ]) {
      await signedOut(login);
      // The window would be opened before the start's first status: none came.
      assert.deepEqual(await login.windows(), [], `${login.platform}: a login start stays in the tray`);
      assert.ok(!login.events.some((e) => e.event === 'window'), `${login.platform}: no window was ever created`);
      assert.deepEqual(await login.quit(), { code: 0, signal: null });
    }
  });

  test('packaged as electron-builder.yml says: assets from resources, no local stack, so "no cloud server is configured"', async () => {
    const resources = packagedLayout(built);
    assert.equal(existsSync(join(resources, 'app', 'dist', 'main', 'main.js')), true);
    assert.equal(existsSync(join(resources, 'app', 'dist', 'main', 'preload.cjs')), true);
    assert.equal(existsSync(join(resources, 'app', 'dist', 'main', 'local-stack.js')), false, 'the local stack is not packaged');
    assert.equal(existsSync(join(resources, 'assets', 'tray', 'linux', 'signed-out-22.png')), true);
    const home = tempHome();
    const run = launchApp({ app: { resources }, home, browserWs: session.server.wsEndpoint(), platform: 'linux', env: { APPIMAGE: '/opt/Apps/CloudToLocalLLM.AppImage' } });
    packaged = { run, home };
    const tray = await run.waitForTray((t) => t.menu !== null && t.toolTip.startsWith(`${PRODUCT_LINE}\nError`), 'the tray saying what is missing');
    assert.equal(tray.toolTip, `${PRODUCT_LINE}\nError: no cloud server is configured: set its URL in Settings`);
    assert.equal(tray.image.path, join(resources, 'assets', 'tray', 'linux', 'error-22.png'));
    assert.equal(tray.image.empty, false);

    await openSettings(run);
    const [win] = await run.windows();
    assert.equal(win?.webPreferences['preload'], join(resources, 'app', 'dist', 'main', 'preload.cjs'));
    assert.equal(await run.inWindow('settings', 'evaluate', { expression: 'typeof window.ctll.getSettings' }), 'function');
    await run.inWindow('settings', 'close');

    await setStartAtLogin(run, true);
    const exec = /^Exec=(.*)$/m.exec(readFileSync(join(home, '.config', 'autostart', 'cloudtolocalllm.desktop'), 'utf8'))?.[1];
    assert.equal(exec, '/opt/Apps/CloudToLocalLLM.AppImage --hidden', 'the AppImage itself, no app folder');
    assert.deepEqual(await run.quit(), { code: 0, signal: null });
    assert.deepEqual(run.problems(), []);
  });
});
