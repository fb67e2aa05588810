/**
 * The Electron double keeps the promises its header makes, checked with tiny apps of its own
 * (a package.json and a main.js): quit does not wait for an async before-quit handler, a handler
 * that prevents the quit can finish and quit again, a `role` item ignores its click, Windows
 * login items match on the same args, and a sandboxed preload can require nothing but what
 * Electron gives it. The desktop app's own tests rely on each of these.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserServer } from 'playwright';
import { chromiumUnavailable, launchChromiumServer } from '../browser.js';
import { launchApp, tempHome, type AppRun, type Platform } from './app-harness.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs `main` (an ES module body that imports from 'electron') as an app and waits for its end. */
function fixture(main: string, files: Record<string, string> = {}): { root: string; cleanup(): void } {
  const root = mkdtempSync(join(tmpdir(), 'ctll-double-app-'));
  dirs.push(root);
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'double-fixture', productName: 'DoubleFixture', version: '1.2.3', type: 'module', main: 'main.js' }));
  writeFileSync(join(root, 'main.js'), main);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(root, name, '..'), { recursive: true });
    writeFileSync(join(root, name), text);
  }
  return { root, cleanup: () => undefined };
}

function run(main: string, options: { platform?: Platform; browserWs?: string; files?: Record<string, string> } = {}): AppRun {
  const home = tempHome();
  dirs.push(home);
  return launchApp({ app: fixture(main, options.files), home, browserWs: options.browserWs ?? '', ...(options.platform ? { platform: options.platform } : {}) });
}

const printed = (app: AppRun): string[] =>
  app.stderr
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('OUT '))
    .map((l) => l.slice(4));

describe('the Electron double behaves as Electron does where the app relies on it', { concurrency: true }, () => {
  test('quit() does not wait for what an async before-quit handler starts', async () => {
    const app = run(`import { app } from 'electron';
      app.on('before-quit', async () => { await new Promise((r) => setTimeout(r, 2000)); console.log('OUT finished'); });
      app.whenReady().then(() => { console.log('OUT ready'); app.quit(); });`);
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    assert.deepEqual(printed(app), ['ready']);
  });

  test('a before-quit handler that prevents the quit can finish its work and quit again', async () => {
    const app = run(`import { app } from 'electron';
      let done = false;
      app.on('before-quit', (event) => {
        if (done) return;
        event.preventDefault();
        setTimeout(() => { console.log('OUT finished'); done = true; app.quit(); }, 50);
      });
      app.on('will-quit', () => console.log('OUT will-quit'));
      app.whenReady().then(() => app.quit());`);
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    assert.deepEqual(printed(app), ['finished', 'will-quit']);
  });

  test('a role item runs its role and ignores its click; other items run their click', async () => {
    const app = run(`import { app, Menu } from 'electron';
      app.whenReady().then(() => {
        const menu = Menu.buildFromTemplate([
          { id: 'hello', label: 'Hello', click: () => console.log('OUT hello clicked') },
          { id: 'quit', label: 'Quit', role: 'quit', click: () => console.log('OUT quit clicked') },
        ]);
        menu.getMenuItemById('hello').click();
        menu.getMenuItemById('quit').click();
      });`);
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    assert.deepEqual(printed(app), ['hello clicked'], 'the quit role quit the app; its click never ran');
  });

  test('Windows login items: read back only with the same path and args; turned off by name', async () => {
    const app = run(
      `import { app } from 'electron';
      app.whenReady().then(() => {
        const args = ['--hidden'];
        app.setLoginItemSettings({ openAtLogin: true, args });
        console.log('OUT ' + JSON.stringify([app.getLoginItemSettings().openAtLogin, app.getLoginItemSettings({ args }).openAtLogin, app.getLoginItemSettings().executableWillLaunchAtLogin]));
        app.setLoginItemSettings({ openAtLogin: false });
        console.log('OUT ' + JSON.stringify(app.getLoginItemSettings({ args }).openAtLogin));
        app.quit();
      });`,
      { platform: 'win32' },
    );
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    assert.deepEqual(printed(app), ['[false,true,true]', 'false']);
  });

  test('on Linux, login items do nothing and there is no Dock; on macOS there is', async () => {
    const code = `import { app } from 'electron';
      app.whenReady().then(() => {
        app.setLoginItemSettings({ openAtLogin: true });
        console.log('OUT ' + JSON.stringify([app.getLoginItemSettings().openAtLogin, typeof app.dock]));
        app.quit();
      });`;
    const linux = run(code, { platform: 'linux' });
    const mac = run(code, { platform: 'darwin' });
    await Promise.all([linux.exited, mac.exited]);
    assert.deepEqual(printed(linux), ['[false,"undefined"]']);
    assert.deepEqual(printed(mac), ['[true,"object"]']);
  });

  describe('windows in Chromium', { skip: chromiumUnavailable() }, () => {
    let server: BrowserServer;
    before(async () => {
      server = await launchChromiumServer();
    });
    after(() => server?.close());

    test("a sandboxed preload gets only Electron's modules; what it exposes is all the page sees", async () => {
      const app = run(
        `import { app, BrowserWindow } from 'electron';
        import { fileURLToPath } from 'node:url';
        app.whenReady().then(async () => {
          const win = new BrowserWindow({ title: 'Window title', webPreferences: { preload: fileURLToPath(new URL('preload.cjs', import.meta.url)), sandbox: true, contextIsolation: true } });
          await win.loadFile(fileURLToPath(new URL('page.html', import.meta.url)));
          console.log('OUT ' + win.getTitle());
        });`,
        {
          browserWs: server.wsEndpoint(),
          files: {
            'preload.cjs': `const { contextBridge } = require('electron');
              let fs = 'required';
              try { require('fs'); } catch (e) { fs = e.message; }
              contextBridge.exposeInMainWorld('probe', { fs, dirname: typeof __dirname, process: typeof process.versions, twice: (x) => x * 2, later: async () => 'resolved' });`,
            'page.html': '<!doctype html><title>Page title</title><p>hi</p>',
          },
        },
      );
      await app.waitForWindow('page', 'loaded');
      const seen = await app.inWindow('page', 'evaluate', {
        expression: 'window.probe.later().then((later) => ({ fs: window.probe.fs, dirname: window.probe.dirname, process: window.probe.process, twice: window.probe.twice(21), later, frozen: Object.isFrozen(window.probe) }))',
      });
      assert.deepEqual(seen, { fs: 'module not found: fs', dirname: 'undefined', process: 'object', twice: 42, later: 'resolved', frozen: true });
      await app.waitFor((e) => (e.event === 'window' && e['action'] === 'loaded' ? e : undefined), 'the load');
      assert.deepEqual((await app.windows()).map((w) => w.title), ['Page title'], "the page's <title> replaced the window's");
      await app.command('quit');
      await app.exited;
      assert.deepEqual(app.problems(), []);
    });
  });
});
