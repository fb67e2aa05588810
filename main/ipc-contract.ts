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
  ListKeys: 'keys:list',
  CreateKey: 'keys:create',
  RevokeKey: 'keys:revoke',
  WriteClipboard: 'clipboard:write',
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

/** One client key as Settings lists it (as `npm run keys -- list --json` does): never its secret. */
export interface ClientKeyView {
  id: string;
  name: string;
  /** The models it may use; null: every model. */
  models: string[] | null;
  allow: ManagementEndpoint[];
  /** The computers (names on the endpoint) it may use; null: all of the user's. */
  machines: string[] | null;
  createdAt: number;
  expiresAt: number | null;
  expired: boolean;
  lastUsedAt: number | null;
  requests: number;
  tokensIn: number;
  tokensOut: number;
}

export interface ClientKeysView {
  /** The endpoint's Ollama base URL (…/ollama), once someone has signed in here. */
  endpoint: string | null;
  /** Whether keys can be made: someone has signed in with this configuration directory. */
  signedIn: boolean;
  keys: ClientKeyView[];
  /** The key files cannot be read (the message says which and why). */
  problem?: string;
}

/** The create form as typed: the main process reads it with the same rules as `npm run keys`. */
export interface CreateKeyRequest {
  name: string;
  /** Comma-separated model names; empty: every model. */
  models: string;
  allow: ManagementEndpoint[];
  /** Comma-separated computer names; empty: all of the user's computers. */
  machines: string;
  /** 30d, 12h, 90m, 2w or a date; empty: never. */
  expires: string;
}

export type CreateKeyField = 'name' | 'models' | 'allow' | 'machines' | 'expires';
export type CreateKeyErrors = Partial<Record<CreateKeyField | 'form', string>>;

export type CreateKeyResult =
  | { ok: true; key: ClientKeyView; secret: string; endpoint: string | null }
  | { ok: false; errors: CreateKeyErrors };

export type RevokeKeyResult = { ok: true; name: string } | { ok: false; error: string };

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
  /** The endpoint and the client keys of this computer's configuration directory. */
  listKeys(): Promise<ClientKeysView>;
  /** Makes a key; the answer carries its secret, which exists nowhere else afterwards. */
  createKey(request: CreateKeyRequest): Promise<CreateKeyResult>;
  revokeKey(id: string): Promise<RevokeKeyResult>;
  /** Puts text on the system clipboard (the windows may not: every permission is denied them). */
  writeClipboard(text: string): Promise<void>;
}

export type { ManagementEndpoint, Settings, SettingsErrors };
