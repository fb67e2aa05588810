/**
 * `app` as Electron's main process has it, where the desktop app depends on it:
 *
 * - Lifecycle: 'ready' after the main script has run; quit() emits 'before-quit', closes every
 *   window, emits 'will-quit' and 'quit', then ends the process. It does NOT wait for anything a
 *   handler starts asynchronously: a handler that must finish work calls event.preventDefault()
 *   and quits again later, as with Electron. SIGINT, SIGTERM and SIGHUP quit the same way.
 *   With no 'window-all-closed' listener, closing the last window quits.
 * - requestSingleInstanceLock() against a real second process: a lock file and a Unix socket in
 *   userData; the second instance's argv reaches the first as 'second-instance'.
 * - getPath() per platform as Electron computes it; app.name from package.json's productName.
 * - Login items with each platform's semantics (state kept in CTLL_DOUBLE_OS_DIR so it outlives
 *   the process): Windows keeps one Run entry per name holding `"path" args` and
 *   getLoginItemSettings() says openAtLogin only for the same path AND args; macOS ignores args;
 *   Linux does nothing (Electron has no login items there).
 * - app.dock exists only on macOS.
 */
import { EventEmitter } from 'node:events';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { control } from './control.js';
import { bindApp } from './menu.js';

export interface LaunchInfo {
  /** The app's folder (the one holding package.json). */
  appPath: string;
  isPackaged: boolean;
  /** Set for packaged runs: the folder electron-builder's extraResources go to. */
  resourcesPath?: string;
}

interface LoginItemRequest {
  openAtLogin?: boolean;
  path?: string;
  args?: string[];
  name?: string;
  type?: string;
  serviceName?: string;
  enabled?: boolean;
}

/** A cancellable Electron event. */
export class ElectronEvent {
  defaultPrevented = false;
  preventDefault(): void {
    this.defaultPrevented = true;
  }
}

/** Electron's FormatCommandLineString (browser_win.cc): the quoted exe, then the args as given. */
function windowsCommandLine(path: string, args: readonly string[]): string {
  return [`"${path}"`, ...args].join(' ');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class App extends EventEmitter {
  readonly isPackaged: boolean;
  name: string;
  readonly #appPath: string;
  readonly #version: string;
  readonly #paths = new Map<string, string>();
  #ready = false;
  readonly #readyPromise: Promise<void>;
  #markReady!: () => void;
  #quitting = false;
  #lock: { file: string; socket: string; server: net.Server } | undefined;
  /** Second-instance notifications still being delivered: exit waits for them. */
  readonly #notifying: Array<Promise<void>> = [];
  /** Keeps the process alive like Electron's message loop until the app quits. */
  readonly #loop = setInterval(() => undefined, 1 << 30);
  #dock: { hidden: boolean } = { hidden: false };
  readonly #openedAtLogin = process.env['CTLL_DOUBLE_OPENED_AT_LOGIN'] === '1';
  /** Closes every window at quit; browser-window.ts sets it. */
  closeAllWindows: () => Promise<boolean> = async () => true;
  /** Runs right before the process ends (closing the browser connection). */
  beforeExit: () => Promise<void> = async () => undefined;

  constructor(launch: LaunchInfo) {
    super();
    this.isPackaged = launch.isPackaged;
    this.#appPath = launch.appPath;
    const pkg = JSON.parse(readFileSync(join(launch.appPath, 'package.json'), 'utf8')) as { name: string; productName?: string; version: string };
    this.name = pkg.productName ?? pkg.name;
    this.#version = pkg.version;
    this.#readyPromise = new Promise((resolve) => (this.#markReady = resolve));
    bindApp(this);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => this.quit());
  }

  /** Called by cli.ts once the main script has been evaluated, as Electron does. */
  markReady(): void {
    if (this.#ready || this.#quitting) return;
    this.#ready = true;
    this.emit('will-finish-launching');
    this.#markReady();
    this.emit('ready', new ElectronEvent(), {});
    control.event('ready');
  }

  whenReady(): Promise<void> {
    return this.#readyPromise;
  }

  isReady(): boolean {
    return this.#ready;
  }

  getVersion(): string {
    return this.#version;
  }

  getName(): string {
    return this.name;
  }

  getAppPath(): string {
    return this.#appPath;
  }

  getLocale(): string {
    return 'en-US';
  }

  // ---- paths ----

  getPath(name: string): string {
    const set = this.#paths.get(name);
    if (set) return set;
    const home = homedir();
    const platform = process.platform;
    const appData =
      platform === 'win32'
        ? (process.env['APPDATA'] ?? join(home, 'AppData', 'Roaming'))
        : platform === 'darwin'
          ? join(home, 'Library', 'Application Support')
          : (process.env['XDG_CONFIG_HOME'] ?? join(home, '.config'));
    switch (name) {
      case 'home':
        return home;
      case 'appData':
        return appData;
      case 'userData':
      case 'sessionData':
        return join(appData, this.name);
      case 'logs':
        return platform === 'darwin' ? join(home, 'Library', 'Logs', this.name) : join(this.getPath('userData'), 'logs');
      case 'temp':
        return tmpdir();
      case 'exe':
        return process.execPath;
      case 'desktop':
      case 'documents':
      case 'downloads':
      case 'music':
      case 'pictures':
      case 'videos':
        return join(home, name[0]!.toUpperCase() + name.slice(1));
      default:
        throw new Error(`Failed to get '${name}' path`);
    }
  }

  setPath(name: string, path: string): void {
    this.#paths.set(name, path);
  }

  // ---- single instance ----

  requestSingleInstanceLock(additionalData?: unknown): boolean {
    if (this.#lock) return true;
    const dir = this.getPath('userData');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'SingletonLock');
    const socket = join(dir, 'SingletonSocket');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        writeSync(fd, String(process.pid));
        closeSync(fd);
        const server = net.createServer((connection) => this.#onSecondInstance(connection));
        rmSync(socket, { force: true });
        server.listen(socket);
        server.unref();
        this.#lock = { file, socket, server };
        control.event('lock', { held: true });
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const holder = Number(readFileSync(file, 'utf8'));
        if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
          this.#notifying.push(this.#notifyFirstInstance(socket, additionalData));
          control.event('lock', { held: false, holder });
          return false;
        }
        rmSync(file, { force: true }); // a crashed instance's stale lock
      }
    }
    return false;
  }

  hasSingleInstanceLock(): boolean {
    return this.#lock !== undefined;
  }

  releaseSingleInstanceLock(): void {
    if (!this.#lock) return;
    this.#lock.server.close();
    rmSync(this.#lock.file, { force: true });
    rmSync(this.#lock.socket, { force: true });
    this.#lock = undefined;
  }

  async #notifyFirstInstance(socket: string, additionalData: unknown): Promise<void> {
    const message = `${JSON.stringify({ argv: process.argv, cwd: process.cwd(), additionalData: additionalData ?? null })}\n`;
    // The first instance may still be starting its socket: try until it answers (bounded).
    for (let attempt = 0; attempt < 100; attempt++) {
      const delivered = await new Promise<boolean>((resolve) => {
        const c = net.connect(socket, () => c.end(message));
        c.on('data', () => undefined);
        c.on('close', (hadError) => resolve(!hadError));
        c.on('error', () => resolve(false));
      });
      if (delivered) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  #onSecondInstance(connection: net.Socket): void {
    let text = '';
    connection.setEncoding('utf8');
    connection.on('data', (chunk: string) => (text += chunk));
    connection.on('end', () => {
      connection.end();
      const { argv, cwd, additionalData } = JSON.parse(text) as { argv: string[]; cwd: string; additionalData: unknown };
      const deliver = (): void => {
        control.event('second-instance', { argv });
        this.emit('second-instance', new ElectronEvent(), argv, cwd, additionalData);
      };
      if (this.#ready) deliver();
      else void this.whenReady().then(deliver);
    });
  }

  // ---- quitting ----

  quit(): void {
    if (this.#quitting) return;
    const before = new ElectronEvent();
    this.emit('before-quit', before);
    control.event('before-quit', { prevented: before.defaultPrevented });
    if (before.defaultPrevented) return;
    this.#quitting = true;
    // Electron closes the windows and quits on later turns of its message loop: whatever a
    // handler started asynchronously gets no more time than that.
    setImmediate(() => void this.#finishQuit());
  }

  async #finishQuit(): Promise<void> {
    if (!(await this.closeAllWindows())) {
      this.#quitting = false;
      control.event('quit-cancelled', { by: 'a window' });
      return;
    }
    const willQuit = new ElectronEvent();
    this.emit('will-quit', willQuit);
    if (willQuit.defaultPrevented) {
      this.#quitting = false;
      control.event('quit-cancelled', { by: 'will-quit' });
      return;
    }
    this.emit('quit', new ElectronEvent(), 0);
    await this.#end(0);
  }

  exit(code = 0): void {
    this.#quitting = true;
    void this.#end(code);
  }

  async #end(code: number): Promise<never> {
    await Promise.all(this.#notifying);
    this.releaseSingleInstanceLock();
    clearInterval(this.#loop);
    await this.beforeExit().catch(() => undefined);
    await control.close('exit', { code });
    process.exit(code);
  }

  // ---- login items ----

  get #loginItemsFile(): string {
    const dir = process.env['CTLL_DOUBLE_OS_DIR'] ?? join(tmpdir(), 'ctll-electron-double-os');
    return join(dir, 'login-items.json');
  }

  #readLoginItems(): Record<string, unknown> {
    try {
      return JSON.parse(readFileSync(this.#loginItemsFile, 'utf8')) as Record<string, unknown>;
    } catch {
      return {};
    }
  }

  #writeLoginItems(items: Record<string, unknown>): void {
    mkdirSync(dirname(this.#loginItemsFile), { recursive: true });
    writeFileSync(this.#loginItemsFile, JSON.stringify(items, null, 2));
  }

  setLoginItemSettings(settings: LoginItemRequest): void {
    const platform = process.platform;
    control.event('login-item', { platform, settings });
    if (platform === 'win32') {
      // HKCU\Software\Microsoft\Windows\CurrentVersion\Run, one value per name.
      const items = this.#readLoginItems();
      const run = (items['windowsRun'] ?? {}) as Record<string, string>;
      const name = settings.name ?? `electron.app.${this.name}`;
      if (settings.openAtLogin) run[name] = windowsCommandLine(settings.path ?? process.execPath, settings.args ?? []);
      else delete run[name];
      this.#writeLoginItems({ ...items, windowsRun: run });
    } else if (platform === 'darwin') {
      const items = this.#readLoginItems();
      const services = (items['macosServices'] ?? {}) as Record<string, boolean>;
      services[settings.type ?? 'mainAppService'] = settings.openAtLogin ?? false;
      this.#writeLoginItems({ ...items, macosServices: services });
    }
    // Linux: Electron has no login items; the call does nothing.
  }

  getLoginItemSettings(options: LoginItemRequest = {}): Record<string, unknown> {
    const platform = process.platform;
    const items = this.#readLoginItems();
    if (platform === 'win32') {
      const run = (items['windowsRun'] ?? {}) as Record<string, string>;
      const path = options.path ?? process.execPath;
      const value = run[options.name ?? `electron.app.${this.name}`];
      return {
        openAtLogin: value === windowsCommandLine(path, options.args ?? []),
        executableWillLaunchAtLogin: value !== undefined && value.startsWith(`"${path}"`),
        launchItems: Object.entries(run).map(([name, command]) => ({ name, path: command, args: [], scope: 'user', enabled: true })),
        wasOpenedAtLogin: false,
        status: 'not-registered',
      };
    }
    if (platform === 'darwin') {
      const services = (items['macosServices'] ?? {}) as Record<string, boolean>;
      const on = services[options.type ?? 'mainAppService'] ?? false;
      return { openAtLogin: on, status: on ? 'enabled' : 'not-registered', wasOpenedAtLogin: this.#openedAtLogin, executableWillLaunchAtLogin: false, launchItems: [] };
    }
    return { openAtLogin: false, wasOpenedAtLogin: false, status: 'not-registered', executableWillLaunchAtLogin: false, launchItems: [] };
  }

  /** Not Electron API: the OS's login items, for the test. */
  describeLoginItems(): Record<string, unknown> {
    return this.#readLoginItems();
  }

  // ---- macOS dock, about panel, misc ----

  get dock(): { hide(): void; show(): Promise<void>; isVisible(): boolean } | undefined {
    if (process.platform !== 'darwin') return undefined;
    const state = this.#dock;
    return {
      hide: () => {
        state.hidden = true;
        control.event('dock', { hidden: true });
      },
      show: async () => {
        state.hidden = false;
        control.event('dock', { hidden: false });
      },
      isVisible: () => !state.hidden,
    };
  }

  describeDock(): Record<string, unknown> | null {
    return process.platform === 'darwin' ? { hidden: this.#dock.hidden } : null;
  }

  showAboutPanel(): void {
    control.event('about-panel');
  }

  setAboutPanelOptions(_options: unknown): void {}

  hide(): void {}

  focus(): void {}

  setAppUserModelId(_id: string): void {}
}
