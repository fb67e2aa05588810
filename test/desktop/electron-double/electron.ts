/**
 * The Electron double's `electron` module: what `import ... from 'electron'` gives the app's main
 * process when cli.ts runs it under Node. Faithful where the desktop app depends on Electron (see
 * each file's header); what the app does not use is absent, so a new use fails loudly.
 */
import { App, type LaunchInfo } from './app.js';
import { BrowserWindow, bindWindows, WebContents } from './browser-window.js';
import { clipboard } from './clipboard.js';
import { control } from './control.js';
import { Menu, MenuItem } from './menu.js';
import { nativeImage, NativeImage } from './native-image.js';
import { createDefaultSession, ipcMain, session, shell } from './shell-ipc-session.js';
import { currentTray, Tray } from './tray.js';

export const LAUNCH_KEY = Symbol.for('ctll.electron-double.launch');

const launch = (globalThis as Record<symbol, unknown>)[LAUNCH_KEY] as LaunchInfo | undefined;
if (!launch) throw new Error('the Electron double must be started through test/desktop/electron-double/cli.ts');

export const app = new App(launch);
bindWindows(app);
app.once('will-finish-launching', () => createDefaultSession((s) => app.emit('session-created', s)));

export const webContents = {
  getAllWebContents: (): WebContents[] => [...WebContents.all],
  fromId: (id: number): WebContents | undefined => [...WebContents.all].find((w) => w.id === id),
  getFocusedWebContents: (): WebContents | null => BrowserWindow.getFocusedWindow()?.webContents ?? null,
};

export const dialog = {
  showErrorBox(title: string, content: string): void {
    process.stderr.write(`${title}\n${content}\n`);
    control.event('error-box', { title, content });
  },
  async showMessageBox(_options: unknown): Promise<{ response: number; checkboxChecked: boolean }> {
    return { response: 0, checkboxChecked: false };
  },
};

export { BrowserWindow, clipboard, ipcMain, Menu, MenuItem, nativeImage, NativeImage, session, shell, Tray };

// Everything the test reads at once.
control.on('state', async () => {
  const windows = await control.run('windows', {});
  return {
    ready: app.isReady(),
    tray: currentTray()?.describe() ?? null,
    windows,
    loginItems: app.describeLoginItems(),
    dock: app.describeDock(),
    lock: app.hasSingleInstanceLock(),
    ipcChannels: ipcMain.channels(),
    sessionPreloads: session.defaultSession.getPreloadScripts(),
  };
});

control.onClose(() => app.quit());

control.on('quit', () => {
  app.quit();
  return null;
});
