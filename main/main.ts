/**
 * The Electron main process: wiring only. The app's logic lives in Electron-free modules
 * (app-controller, tray-menu, settings, autostart, auth) that the tests run under Node.
 */
import { configDir, CONFIG_DIR_VARIABLE } from '@cloudtolocalllm/bridge/keys/config-dir';
import { KeyRing } from '@cloudtolocalllm/bridge/keys/key-ring';
import { KeyStore } from '@cloudtolocalllm/bridge/keys/key-store';
import { app, clipboard, Menu, nativeImage, shell, Tray } from 'electron';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { appIconFile } from './icons/tray-icon-file.js';
import { AppController, type AppControllerOptions } from './app-controller.js';
import { ClientKeys } from './client-keys.js';
import { openTokenStore } from './auth/token-store.js';
import { LinuxAutostart } from './autostart/linux-autostart.js';
import { StartAtLogin } from './autostart/start-at-login.js';
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
// Built only for runs from source: electron-builder.yml leaves it out of every package.
const localStackFile = join(distDir, 'main', 'local-stack.js');
/** Quit waits this long at most for the bridge, the proxy and the local stack to stop. */
const STOP_AT_QUIT_MS = 30_000;

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

  const windows = new Windows(distDir, join(assetsDir, appIconFile(process.platform)), {
    openExternal: (url) => shell.openExternal(url).catch((e: Error) => log.warn('the browser could not be opened', { error: e.message })),
    onVisibilityChange: () => renderTray(),
  });
  const startAtLogin = new StartAtLogin({
    platform: process.platform,
    isPackaged: app.isPackaged,
    appPath: app.getAppPath(),
    executable: process.env['APPIMAGE'] ?? process.execPath,
    loginItems: app,
    linux: new LinuxAutostart(),
  });
  // A rejection reaches the sign-in, which then says the browser failed instead of waiting.
  const openBrowser = async (url: string): Promise<void> => {
    if (!isSafeExternalUrl(url)) throw new Error(`only http(s) addresses are opened in the browser, not ${url}`);
    await shell.openExternal(url);
  };
  const localStack: Pick<AppControllerOptions, 'startLocalStack'> =
    !app.isPackaged && existsSync(localStackFile)
      ? {
          startLocalStack: async () => {
            const module = (await import(pathToFileURL(localStackFile).href)) as typeof import('./local-stack.js');
            return module.startLocalStack((line) => log.info(line));
          },
        }
      : {};

  // Client keys live where `npm run keys` finds them: CTLL_CONFIG_DIR, else this app's data directory.
  const keys = new KeyRing(new KeyStore(process.env[CONFIG_DIR_VARIABLE] ? configDir(process.env) : app.getPath('userData')));
  keys.on('problem', (message) => log.warn('client keys', { problem: message }));
  try {
    keys.start();
  } catch (e) {
    log.warn('client keys are off', { error: (e as Error).message });
  }
  const controller = new AppController({
    keys,
    settings: () => settings.settings,
    tokenStore,
    openBrowser,
    ...localStack,
    log: { info: (m, f) => log.info(m, f ?? ''), warn: (m, f) => log.warn(m, f ?? ''), error: (m, f) => log.error(m, f ?? '') },
  });

  const tray = new Tray(nativeImage.createFromPath(trayIconPath(assetsDir, process.platform, 'signed-out')));
  let lastStatus: StatusView = controller.status();
  let menu: Menu | undefined;
  const actions = {
    toggleWindow: () => windows.toggle('settings'),
    openSettings: () => windows.show('settings'),
    openAbout: () => windows.show('about'),
    signIn: () => void controller.signIn(),
    signOut: () => void controller.signOut(),
    openLogs: () => void shell.openPath(dirname(logFilePath())),
  };
  // The menu depends on the status and on whether the window shows (Show or Hide).
  function renderTray(): void {
    menu = Menu.buildFromTemplate(trayMenuTemplate(lastStatus, windows.isVisible('settings'), actions));
    tray.setContextMenu(menu);
  }
  const render = (status: StatusView): void => {
    lastStatus = status;
    tray.setImage(nativeImage.createFromPath(trayIconPath(assetsDir, process.platform, status.trayState)));
    tray.setToolTip(trayTooltip(status));
    renderTray();
    windows.broadcast(IpcChannel.StatusChanged, status);
  };
  controller.on('status', render);
  render(lastStatus);

  registerIpc({
    controller,
    settings,
    rendererDirUrl: windows.rendererDirUrl,
    startAtLogin: () => startAtLogin.isEnabled(),
    openLogs: async () => void (await shell.openPath(dirname(logFilePath()))),
    // Before anyone signs in here, the endpoint follows from the configured cloud (local mode: none yet).
    keys: new ClientKeys(keys.store, () => (settings.settings.cloudServerUrl ? `${settings.settings.cloudServerUrl.replace(/\/+$/, '')}/ollama` : undefined)),
    writeClipboard: (text) => clipboard.writeText(text),
    afterSave: async (previous: Settings, next: Settings) => {
      if (previous.logLevel !== next.logLevel) setLogLevel(next.logLevel);
      if (next.startAtLogin !== (await startAtLogin.isEnabled())) await startAtLogin.set(next.startAtLogin);
    },
  });

  app.on('second-instance', () => windows.show('settings'));
  // Closing every window keeps the app in the tray.
  app.on('window-all-closed', () => undefined);
  // Electron does not wait for an async before-quit handler: hold the quit until the bridge, the
  // proxy and the local stack (with the user's Docker proxy) are stopped, then quit for real.
  let stop: 'running' | 'stopping' | 'stopped' = 'running';
  app.on('before-quit', (event) => {
    if (stop === 'stopped') return;
    event.preventDefault();
    if (stop === 'stopping') return;
    stop = 'stopping';
    void stopForQuit(controller, log).then(() => {
      stop = 'stopped';
      app.quit();
    });
  });

  // End-to-end tests (test/desktop/electron-e2e.test.ts) read the tray through this hook; it
  // exists only when CTLL_TEST_HOOKS=1 is set and exposes nothing secret.
  if (process.env['CTLL_TEST_HOOKS'] === '1') {
    (globalThis as Record<string, unknown>)['ctllTest'] = {
      trayMenu: () => menu?.items.map((i) => ({ id: i.id, label: i.label, type: i.type })) ?? [],
      // As a click in the tray: through the menu item, so a role item does its role.
      clickTray: (id: string) => menu?.getMenuItemById(id)?.click(),
      tooltip: () => trayTooltip(lastStatus),
      status: () => lastStatus,
    };
  }

  if (!startAtLogin.startedAtLogin(process.argv) && !loaded.settings.startMinimized) windows.show('settings');
  await controller.start();
}

/** Stops everything the controller runs, waiting at most STOP_AT_QUIT_MS; never rejects. */
async function stopForQuit(controller: AppController, log: ReturnType<typeof setupLogging>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), STOP_AT_QUIT_MS)));
  const stopped = controller.stop().then(
    () => 'stopped' as const,
    (e: Error) => e,
  );
  const outcome = await Promise.race([stopped, bound]);
  clearTimeout(timer);
  if (outcome === 'stopped') log.info('quit: the bridge, the proxy and the local stack are stopped');
  else if (outcome === 'late') log.warn(`quit: stopping took more than ${STOP_AT_QUIT_MS / 1000} s; quitting anyway`);
  else log.error('quit: stopping failed', { error: outcome.message });
}
