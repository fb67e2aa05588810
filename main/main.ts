/**
 * The Electron main process: wiring only. The app's logic lives in Electron-free modules
 * (app-controller, tray-menu, settings, autostart, auth) that the tests run under Node.
 */
import { app, Menu, nativeImage, shell, Tray } from 'electron';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppController } from './app-controller.js';
import { openTokenStore } from './auth/token-store.js';
import { LinuxAutostart } from './autostart/linux-autostart.js';
import { IpcChannel, type StatusView } from './ipc-contract.js';
import { registerIpc } from './ipc.js';
import { logFilePath, setLogLevel, setupLogging } from './logging/setup.js';
import { isSafeExternalUrl } from './security.js';
import { SettingsStore } from './settings/settings-store.js';
import type { Settings } from './settings/settings.js';
import { trayIconPath } from './tray-icons.js';
import { trayMenuTemplate, trayTooltip } from './tray-menu.js';
import { Windows } from './windows.js';

const distDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const assetsDir = app.isPackaged ? join(process.resourcesPath, 'assets') : join(distDir, '..', 'assets');

// One instance: a second launch shows the first one's window instead.
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  void main();
}

async function main(): Promise<void> {
  await app.whenReady();
  // Tray-first: no Dock icon on macOS.
  app.dock?.hide();
  const settings = new SettingsStore(app.getPath('userData'));
  const loaded = await settings.load();
  const log = setupLogging(loaded.settings.logLevel);
  if (loaded.problem) log.warn(loaded.problem);

  const tokenStore = await openTokenStore();
  if (tokenStore.kind === 'memory') log.warn(tokenStore.detail);

  const windows = new Windows(distDir, join(assetsDir, 'icon.png'));
  const autostart = new LinuxAutostart();
  const openBrowser = (url: string): void => {
    if (isSafeExternalUrl(url)) void shell.openExternal(url);
  };

  const controller = new AppController({
    settings: () => settings.settings,
    tokenStore,
    openBrowser,
    startLocalStack: async () => {
      // Present when running from source; packaged builds need a cloud server URL.
      const localStackModule = './local-stack.js';
      const { startLocalStack } = (await import(localStackModule)) as typeof import('./local-stack.js');
      return startLocalStack((line) => log.info(line));
    },
    log: { info: (m, f) => log.info(m, f ?? ''), warn: (m, f) => log.warn(m, f ?? ''), error: (m, f) => log.error(m, f ?? '') },
  });

  const startAtLogin = async (): Promise<boolean> =>
    process.platform === 'linux' ? autostart.isEnabled() : app.getLoginItemSettings().openAtLogin;

  const tray = new Tray(nativeImage.createFromPath(trayIconPath(assetsDir, process.platform, 'signed-out')));
  let lastStatus: StatusView = controller.status();
  const actions = {
    toggleWindow: () => windows.toggle('settings'),
    openSettings: () => windows.show('settings'),
    openAbout: () => windows.show('about'),
    signIn: () => void controller.signIn(),
    signOut: () => void controller.signOut(),
    openLogs: () => void shell.openPath(dirname(logFilePath())),
    quit: () => app.quit(),
  };
  const render = (status: StatusView): void => {
    lastStatus = status;
    tray.setImage(nativeImage.createFromPath(trayIconPath(assetsDir, process.platform, status.trayState)));
    tray.setToolTip(trayTooltip(status));
    tray.setContextMenu(Menu.buildFromTemplate(trayMenuTemplate(status, windows.isVisible('settings'), actions)));
    windows.broadcast(IpcChannel.StatusChanged, status);
  };
  controller.on('status', render);
  render(lastStatus);

  registerIpc({
    controller,
    settings,
    rendererDirUrl: windows.rendererDirUrl,
    startAtLogin,
    openLogs: async () => void (await shell.openPath(dirname(logFilePath()))),
    afterSave: async (previous: Settings, next: Settings) => {
      if (previous.logLevel !== next.logLevel) setLogLevel(next.logLevel);
      if (next.startAtLogin !== (await startAtLogin())) {
        if (process.platform === 'linux') {
          const exec = process.env['APPIMAGE'] ?? process.execPath;
          await (next.startAtLogin ? autostart.enable(exec) : autostart.disable());
        } else {
          app.setLoginItemSettings({ openAtLogin: next.startAtLogin, args: ['--hidden'] });
        }
      }
    },
  });

  app.on('second-instance', () => windows.show('settings'));
  // Closing every window keeps the app in the tray.
  app.on('window-all-closed', () => undefined);
  app.on('before-quit', () => void controller.stop());

  // End-to-end tests (test/desktop/electron-e2e.test.ts) read the tray through this hook; it
  // exists only when CTLL_TEST_HOOKS=1 is set and exposes nothing secret.
  if (process.env['CTLL_TEST_HOOKS'] === '1') {
    (globalThis as Record<string, unknown>)['ctllTest'] = {
      trayMenu: () => trayMenuTemplate(lastStatus, windows.isVisible('settings'), actions).map((i) => ({ id: i.id, label: i.label, type: i.type })),
      clickTray: (id: string) => (trayMenuTemplate(lastStatus, windows.isVisible('settings'), actions).find((i) => i.id === id)?.click as (() => void) | undefined)?.(),
      tooltip: () => trayTooltip(lastStatus),
      status: () => lastStatus,
    };
  }

  const hidden = process.argv.includes('--hidden') || loaded.settings.startMinimized;
  if (!hidden) windows.show('settings');
  await controller.start();
}
