/**
 * The desktop app's brain, without Electron: signs the user in, has the cloud server provision
 * their proxy, runs the bridge, applies settings, and publishes one StatusView for the tray and
 * the windows. main.ts only wires this to Electron's tray, windows and IPC.
 */
import { EventEmitter } from 'node:events';
import { Bridge } from '@cloudtolocalllm/bridge';
import type { BridgeCounters, BridgeStatus, OllamaHealth } from '@cloudtolocalllm/bridge/supervisor/status';
import { AuthSession } from './auth/session.js';
import type { TokenStore } from './auth/token-store.js';
import type { TokenSet } from './auth/token-set.js';
import type { SignInOptions } from './auth/pkce-sign-in.js';
import type { StatusView } from './ipc-contract.js';
import { ApiClient, fetchClientConfig, type ProxyStartState } from './api-client.js';
import type { Settings } from './settings/settings.js';
import { statusView, type StatusParts } from './status-view.js';

/** The local stack (server/ on this machine), started when no cloud server is configured. */
export interface LocalStack {
  url: string;
  close(): Promise<void>;
}

export interface AppLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface AppControllerOptions {
  settings: () => Settings;
  tokenStore: TokenStore;
  openBrowser: (url: string) => void | Promise<void>;
  /** Starts the local stack when `cloudServerUrl` is empty; absent in builds that do not ship it. */
  startLocalStack?: () => Promise<LocalStack>;
  /** Replaces the browser sign-in (tests, headless). */
  signInImpl?: (o: SignInOptions) => Promise<TokenSet>;
  log: AppLogger;
  /** Only tests change these. */
  bridgeTuning?: Pick<ConstructorParameters<typeof Bridge>[0], 'heartbeat' | 'backoff'>;
  statusIntervalMs?: number;
}

export class AppController extends EventEmitter<{ status: [StatusView] }> {
  private serverUrl: string | undefined;
  private local: LocalStack | undefined;
  private session: AuthSession | undefined;
  private apiClient: ApiClient | undefined;
  private bridge: Bridge | undefined;
  private bridgeStatus: BridgeStatus | undefined;
  private ollama: OllamaHealth | undefined;
  private proxyState: ProxyStartState = { state: 'idle' };
  private authError: string | undefined;
  /** Why the server is not available (not a sign-in failure: nobody signed in yet). */
  private setupError: string | undefined;
  private connecting: AbortController | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private lastEmitted = '';

  constructor(private readonly options: AppControllerOptions) {
    super();
  }

  status(): StatusView {
    const settings = this.options.settings();
    const parts: StatusParts = {
      auth: {
        state: this.session?.state ?? 'signed-out',
        ...(this.session?.user ? { name: this.session.user.name } : {}),
        ...(this.authError ? { error: this.authError } : {}),
      },
      proxy: this.proxyState.detail ? { state: this.proxyState.state, detail: this.proxyState.detail } : { state: this.proxyState.state },
      ...(this.bridgeStatus ? { bridge: this.bridgeStatus } : {}),
      ...(this.ollama ? { ollama: this.ollama } : {}),
      ...(this.bridge ? { counters: this.bridge.counters as BridgeCounters } : {}),
      keychain: { available: this.options.tokenStore.kind === 'keychain', detail: this.options.tokenStore.detail },
      cloudHost: settings.cloudServerUrl ? new URL(settings.cloudServerUrl).host : 'this computer',
      ...(this.setupError ? { setupError: this.setupError } : {}),
    };
    return statusView(parts);
  }

  /** At app start: reach the server, restore a saved sign-in, connect if signed in. */
  async start(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = setInterval(() => this.publish(), this.options.statusIntervalMs ?? 2_000);
    this.ticker.unref();
    if (await this.prepare()) {
      try {
        await this.session!.restore();
        if (this.session!.state === 'signed-in') await this.connect();
      } catch (e) {
        // The streaming proxy's start state carries the reason to the tray.
        this.options.log.error('start failed', { error: (e as Error).message });
      }
    }
    this.publish();
  }

  async signIn(): Promise<{ ok: true } | { ok: false; error: string }> {
    if (!this.session && !(await this.prepare())) return { ok: false, error: this.setupError! };
    // Signed in with a bridge running: nothing to do. A second bridge of the same account would
    // make the server replace the first, and each would then replace the other.
    if (this.session!.state === 'signed-in' && this.bridge) return { ok: true };
    try {
      this.authError = undefined;
      this.publish();
      await this.session!.signIn();
    } catch (e) {
      this.authError = (e as Error).message;
      this.options.log.warn('sign-in failed', { error: this.authError });
      this.publish();
      return { ok: false, error: this.authError };
    }
    try {
      await this.connect();
      return { ok: true };
    } catch (e) {
      this.options.log.warn('connecting after sign-in failed', { error: (e as Error).message });
      this.publish();
      return { ok: false, error: (e as Error).message };
    }
  }

  /** Stops the bridge and the proxy, then revokes and forgets the tokens. */
  async signOut(): Promise<void> {
    await this.disconnect();
    await this.apiClient?.stopProxy().catch((e: Error) => this.options.log.warn('stopping the proxy failed', { error: e.message }));
    await this.session?.signOut().catch((e: Error) => this.options.log.warn('sign-out was incomplete', { error: e.message }));
    this.proxyState = { state: 'idle' };
    this.publish();
  }

  /** Applies saved settings: a new server or Ollama URL reconnects; a policy change does not. */
  async applySettings(previous: Settings, next: Settings): Promise<void> {
    if (previous.cloudServerUrl !== next.cloudServerUrl) {
      await this.disconnect();
      await this.local?.close();
      this.local = undefined;
      this.session = undefined;
      this.serverUrl = undefined;
      await this.start();
      return;
    }
    if (previous.ollamaUrl !== next.ollamaUrl && this.session?.state === 'signed-in') {
      await this.disconnect();
      await this.connect();
      return;
    }
    this.bridge?.setPolicy({ allowManagement: new Set(next.allowManagement) });
    this.publish();
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    await this.disconnect();
    const local = this.local;
    this.local = undefined;
    await local?.close();
  }

  /** prepareServer, its failure kept for the status: false when the server is not available. */
  private async prepare(): Promise<boolean> {
    try {
      await this.prepareServer();
      this.setupError = undefined;
      return true;
    } catch (e) {
      this.setupError = (e as Error).message;
      this.options.log.error('the cloud server is not available', { error: this.setupError });
      this.publish();
      return false;
    }
  }

  private async prepareServer(): Promise<void> {
    const settings = this.options.settings();
    if (settings.cloudServerUrl) {
      this.serverUrl = settings.cloudServerUrl;
    } else {
      if (!this.options.startLocalStack) throw new Error('no cloud server is configured: set its URL in Settings');
      try {
        this.local ??= await this.options.startLocalStack();
      } catch (e) {
        throw new Error(`the cloud server on this computer could not start: ${(e as Error).message}`, { cause: e });
      }
      this.serverUrl = this.local.url;
    }
    const config = await fetchClientConfig(this.serverUrl);
    this.session = new AuthSession({
      issuer: config.issuer,
      clientId: config.desktopClientId,
      audience: config.audience,
      store: this.options.tokenStore,
      openBrowser: this.options.openBrowser,
      ...(this.options.signInImpl ? { signInImpl: this.options.signInImpl } : {}),
    });
    this.session.on('state', () => this.publish());
    this.apiClient = new ApiClient({ serverUrl: this.serverUrl, getToken: () => this.session!.accessToken() });
    this.apiClient.on('state', (s) => {
      this.proxyState = s;
      this.publish();
    });
  }

  private async connect(): Promise<void> {
    if (!this.apiClient || !this.serverUrl || !this.session) return;
    this.connecting?.abort();
    const controller = new AbortController();
    this.connecting = controller;
    await this.apiClient.ensureProxyRunning(controller.signal);
    if (controller.signal.aborted) return;
    // Never two bridges of one account: the server would have each replace the other.
    await this.stopBridge();
    if (controller.signal.aborted) return;
    const settings = this.options.settings();
    const bridge = new Bridge({
      proxyUrl: `${this.serverUrl.replace(/^http/, 'ws')}/ws/bridge`,
      getToken: () => this.session!.accessToken(),
      ollamaUrl: settings.ollamaUrl,
      policy: { allowManagement: new Set(settings.allowManagement) },
      ...this.options.bridgeTuning,
    });
    bridge.on('status', (s) => {
      if (this.bridge !== bridge) return; // a bridge being stopped says so no more
      this.bridgeStatus = s;
      if (s.state === 'error' || s.state === 'disconnected') this.options.log.warn(`bridge ${s.state}`, { reason: s.reason, code: s.code });
      else this.options.log.info(`bridge ${s.state}`);
      this.publish();
    });
    bridge.on('ollama', (o) => {
      if (this.bridge !== bridge) return;
      this.ollama = o;
      this.publish();
    });
    this.bridge = bridge;
    bridge.start();
  }

  private async disconnect(): Promise<void> {
    this.connecting?.abort();
    await this.stopBridge();
  }

  private async stopBridge(): Promise<void> {
    const bridge = this.bridge;
    this.bridge = undefined;
    this.bridgeStatus = undefined;
    await bridge?.stop();
  }

  private publish(): void {
    const view = this.status();
    const key = JSON.stringify(view);
    if (key === this.lastEmitted) return;
    this.lastEmitted = key;
    this.emit('status', view);
  }
}
