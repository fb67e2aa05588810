/**
 * Answers the windows' IPC calls, one handler per channel of the contract, each checking that
 * the call comes from one of our own pages before doing anything.
 */
import { app, ipcMain, shell, type IpcMainInvokeEvent } from 'electron';
import { IpcChannel, type AboutInfo, type DesktopApi, type SaveSettingsResult } from './ipc-contract.js';
import type { AppController } from './app-controller.js';
import type { ClientKeys } from './client-keys.js';
import { testOllama } from './ollama-probe.js';
import { isSafeExternalUrl, isTrustedSenderUrl } from './security.js';
import type { SettingsStore } from './settings/settings-store.js';
import type { Settings } from './settings/settings.js';

export interface IpcDeps {
  controller: AppController;
  settings: SettingsStore;
  rendererDirUrl: string;
  /** Applies side effects of saved settings outside the controller (login item, log level). */
  afterSave(previous: Settings, next: Settings): Promise<void>;
  /** The true current start-at-login state (the OS's, not just our setting). */
  startAtLogin(): Promise<boolean>;
  openLogs(): Promise<void>;
  /** Client keys on this computer's configuration directory (the store `npm run keys` uses). */
  keys: ClientKeys;
  /** Electron's clipboard.writeText. */
  writeClipboard(text: string): void;
}

/** A URL, a key or a snippet: anything longer is not something Settings copies. */
const CLIPBOARD_MAX = 16_384;

type Handler<K extends keyof DesktopApi> = (...args: Parameters<DesktopApi[K]>) => ReturnType<DesktopApi[K]>;

export function registerIpc(deps: IpcDeps): void {
  const handle = <K extends keyof DesktopApi>(channel: string, fn: Handler<K>): void => {
    ipcMain.handle(channel, (event: IpcMainInvokeEvent, ...args: unknown[]) => {
      if (!isTrustedSenderUrl(event.senderFrame?.url, deps.rendererDirUrl)) {
        throw new Error('refused: this IPC call does not come from a CloudToLocalLLM window');
      }
      return (fn as (...a: unknown[]) => unknown)(...args);
    });
  };

  handle<'getSettings'>(IpcChannel.GetSettings, async () => ({ ...deps.settings.settings, startAtLogin: await deps.startAtLogin() }));
  handle<'saveSettings'>(IpcChannel.SaveSettings, async (candidate): Promise<SaveSettingsResult> => {
    const previous = deps.settings.settings;
    const result = await deps.settings.save(candidate);
    if (!result.ok) return result;
    await deps.afterSave(previous, result.settings);
    await deps.controller.applySettings(previous, result.settings);
    return result;
  });
  handle<'testOllama'>(IpcChannel.TestOllama, (url) => testOllama(String(url)));
  handle<'getStatus'>(IpcChannel.GetStatus, async () => deps.controller.status());
  handle<'signIn'>(IpcChannel.SignIn, () => deps.controller.signIn());
  handle<'signOut'>(IpcChannel.SignOut, () => deps.controller.signOut());
  handle<'getAbout'>(IpcChannel.GetAbout, async (): Promise<AboutInfo> => ({
    name: 'CloudToLocalLLM',
    version: app.getVersion(),
    electron: process.versions.electron ?? 'unknown',
    node: process.versions.node,
    chromium: process.versions.chrome ?? 'unknown',
    license: 'MIT',
    links: [
      { label: 'Documentation', url: 'https://github.com/imrightguy/CloudToLocalLLM#readme' },
      { label: 'Report a problem', url: 'https://github.com/imrightguy/CloudToLocalLLM/issues' },
      { label: 'Ollama', url: 'https://ollama.com' },
    ],
  }));
  handle<'openExternal'>(IpcChannel.OpenExternal, async (url) => {
    if (!isSafeExternalUrl(String(url))) throw new Error('only http(s) links can be opened');
    await shell.openExternal(String(url));
  });
  handle<'openLogs'>(IpcChannel.OpenLogs, () => deps.openLogs());
  handle<'listKeys'>(IpcChannel.ListKeys, async () => deps.keys.list());
  // The answer carries the secret; nothing here logs a request or an answer.
  handle<'createKey'>(IpcChannel.CreateKey, async (request) => deps.keys.create(request));
  handle<'revokeKey'>(IpcChannel.RevokeKey, async (id) => deps.keys.revoke(id));
  handle<'writeClipboard'>(IpcChannel.WriteClipboard, async (text) => {
    if (typeof text !== 'string' || text.length > CLIPBOARD_MAX) throw new Error(`only text of at most ${CLIPBOARD_MAX} characters can be copied`);
    deps.writeClipboard(text);
  });
}
