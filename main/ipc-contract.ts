/**
 * The one contract between the main process, the preload script and the windows: channel names
 * defined once, with the types that travel on each. A renamed channel breaks the build, not the
 * app. No Electron import here, so the renderer and the tests use it too.
 */
import type { ManagementEndpoint } from '@cloudtolocalllm/bridge/ingress/ollama-routes';
import type { Settings, SettingsErrors } from './settings/settings.js';

export const IpcChannel = {
  GetSettings: 'settings:get',
  SaveSettings: 'settings:save',
  TestOllama: 'ollama:test',
  GetStatus: 'status:get',
  /** main → windows: the status changed. */
  StatusChanged: 'status:changed',
  SignIn: 'auth:sign-in',
  SignOut: 'auth:sign-out',
  GetAbout: 'about:get',
  OpenExternal: 'shell:open-external',
  OpenLogs: 'logs:open',
} as const;
export type IpcChannelName = (typeof IpcChannel)[keyof typeof IpcChannel];

export type TrayState = 'signed-out' | 'connecting' | 'connected' | 'error';

/** Everything the windows show about the app's state. */
export interface StatusView {
  trayState: TrayState;
  /** One line for the tray menu and the windows, e.g. "Connected to cloud.example.com". */
  statusLine: string;
  account: { signedIn: boolean; name?: string; issuer?: string };
  bridge: { state: string; reason?: string; connectedSince?: number; retryInMs?: number };
  proxy: { state: 'idle' | 'provisioning' | 'running' | 'error'; detail?: string };
  ollama: { reachable: boolean | undefined; detail?: string };
  counters: { requests: number; bytesIn: number; bytesOut: number; activeStreams: number };
  /** Where tokens are kept: the OS keychain, or (when none answers) memory for this session. */
  keychain: { available: boolean; detail: string };
}

export type SaveSettingsResult = { ok: true; settings: Settings } | { ok: false; errors: SettingsErrors };

export type OllamaTestResult = { ok: true; version: string; modelCount: number; url: string } | { ok: false; error: string; url: string };

export interface AboutInfo {
  name: string;
  version: string;
  electron: string;
  node: string;
  chromium: string;
  license: string;
  links: Array<{ label: string; url: string }>;
}

/** What the preload script exposes to the windows as `window.ctll`. */
export interface DesktopApi {
  getSettings(): Promise<Settings>;
  saveSettings(settings: Settings): Promise<SaveSettingsResult>;
  testOllama(url: string): Promise<OllamaTestResult>;
  getStatus(): Promise<StatusView>;
  /** Calls back on every status change; returns the unsubscribe function. */
  onStatus(callback: (status: StatusView) => void): () => void;
  signIn(): Promise<{ ok: true } | { ok: false; error: string }>;
  signOut(): Promise<void>;
  getAbout(): Promise<AboutInfo>;
  /** Opens an http(s) URL in the system browser; anything else is refused. */
  openExternal(url: string): Promise<void>;
  openLogs(): Promise<void>;
}

export type { ManagementEndpoint, Settings, SettingsErrors };
