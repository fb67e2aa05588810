/**
 * Runs the BUILT desktop app (dist/main/main.js) as users run it, under Node with the Electron
 * double (test/desktop/electron-double/) standing in for Electron, which cannot run here.
 *
 * - buildApp(): `npm run build:desktop` into a folder of its own, laid out like the project
 *   (package.json, assets/, node_modules/), so parallel test files never share a build.
 * - packagedLayout(): the same build arranged as electron-builder.yml packages it.
 * - launchApp(): one app process (its own process group) with a control line to it: its events
 *   (tray, windows, browser opened, quit...) and commands (click a tray item, act in a window).
 * - signInThroughBrowser(): what the person does on the sign-in page the app opened.
 *
 * Waits are on events; each has a generous bound that only turns a hang into a failure message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserServer } from 'playwright';
import type { Settings } from '../../main/settings/settings.js';
import { buildDesktop } from '../../scripts/build-desktop.js';
import { launchChromiumServer } from '../browser.js';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'test', 'desktop', 'electron-double', 'cli.ts');
// Absolute, so the app may run from any folder (a packaged layout has no node_modules of tsx).
const TSX = import.meta.resolve('tsx');
export const APP_NAME = 'CloudToLocalLLM';
export const PRODUCT_LINE = 'CloudToLocalLLM - Multi-Tenant Streaming';
export type Platform = 'linux' | 'win32' | 'darwin';

const HANG_MS = 45_000;

export interface BuiltApp {
  /** The app's folder: what `electron .` is given. */
  root: string;
  cleanup(): void;
}

/** Builds the desktop app into a temporary folder laid out like the project. */
export async function buildApp(): Promise<BuiltApp> {
  const base = mkdtempSync(join(tmpdir(), 'ctll-app-'));
  const root = join(base, 'app');
  mkdirSync(root);
  cpSync(join(ROOT, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(ROOT, 'assets'), join(root, 'assets'));
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  await buildDesktop({ outDir: join(root, 'dist') });
  return { root, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

// ---- electron-builder.yml ----

interface BuilderConfig {
  files: string[];
  extraResources: Array<{ from: string; to: string; filter: string[] }>;
  asarUnpack: string[];
}

/**
 * The three lists of electron-builder.yml that decide the packaged layout. The file is plain
 * block YAML; this reads exactly its shape and fails on anything else rather than guess.
 */
export function readBuilderConfig(text = readFileSync(join(ROOT, 'electron-builder.yml'), 'utf8')): BuilderConfig {
  const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  const block = (key: string): string[] => {
    const start = lines.findIndex((l) => l === `${key}:`);
    if (start < 0) throw new Error(`electron-builder.yml has no top-level "${key}:"`);
    const out: string[] = [];
    for (const l of lines.slice(start + 1)) {
      if (!l.startsWith(' ')) break;
      out.push(l);
    }
    return out;
  };
  const unquote = (s: string): string => s.trim().replace(/^"(.*)"$/, '$1');
  const list = (key: string): string[] =>
    block(key).map((l) => {
      const m = /^ {2}- (.+)$/.exec(l);
      if (!m) throw new Error(`electron-builder.yml "${key}": expected "  - item", got ${JSON.stringify(l)}`);
      return unquote(m[1]!);
    });
  const extraResources: BuilderConfig['extraResources'] = [];
  let current: BuilderConfig['extraResources'][number] | undefined;
  for (const l of block('extraResources')) {
    let m: RegExpExecArray | null;
    if ((m = /^ {2}- from: (.+)$/.exec(l))) extraResources.push((current = { from: unquote(m[1]!), to: '', filter: [] }));
    else if ((m = /^ {4}to: (.+)$/.exec(l)) && current) current.to = unquote(m[1]!);
    else if (/^ {4}filter:$/.test(l)) continue;
    else if ((m = /^ {6}- (.+)$/.exec(l)) && current) current.filter.push(unquote(m[1]!));
    else throw new Error(`electron-builder.yml "extraResources": unexpected line ${JSON.stringify(l)}`);
  }
  return { files: list('files'), extraResources, asarUnpack: list('asarUnpack') };
}

/** electron-builder's glob subset used in the file: `**`, `*`, literal names; '!' negates. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Whether `path` (relative, '/') is selected by a pattern list: the last matching pattern wins. */
export function selected(path: string, patterns: readonly string[]): boolean {
  let keep = false;
  for (const p of patterns) {
    const negated = p.startsWith('!');
    const glob = negated ? p.slice(1) : p;
    // A directory pattern ("dist/main/**") also selects the files below it.
    if (globToRegExp(glob).test(path)) keep = !negated;
  }
  return keep;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.push(relative(dir, full).split(sep).join('/'));
    }
  };
  walk(dir);
  return out;
}

/**
 * The build arranged as electron-builder.yml packages it: RESOURCES/app holds the `files` (a
 * folder instead of app.asar, which Electron also loads), RESOURCES/<to> the extraResources.
 * node_modules is linked (electron-builder ships the production dependencies). Returns RESOURCES.
 */
export function packagedLayout(app: BuiltApp): string {
  const config = readBuilderConfig();
  const resources = join(dirname(app.root), 'resources');
  rmSync(resources, { recursive: true, force: true });
  const appDir = join(resources, 'app');
  for (const file of filesUnder(app.root).filter((f) => !f.startsWith('node_modules/') && !f.startsWith('assets/'))) {
    if (!selected(file, config.files)) continue;
    mkdirSync(dirname(join(appDir, file)), { recursive: true });
    cpSync(join(app.root, file), join(appDir, file));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(appDir, 'node_modules'));
  for (const extra of config.extraResources) {
    const from = join(ROOT, extra.from);
    for (const file of filesUnder(from)) {
      if (!selected(file, extra.filter)) continue;
      mkdirSync(dirname(join(resources, extra.to, file)), { recursive: true });
      cpSync(join(from, file), join(resources, extra.to, file));
    }
  }
  return resources;
}

// ---- one app process ----

export interface AppEvent {
  event: string;
  [key: string]: unknown;
}

export interface TrayView {
  image: { path: string | null; empty: boolean; size: { width: number; height: number }; scales: number[]; template: boolean };
  toolTip: string;
  menu: MenuItemView[] | null;
}

export interface MenuItemView {
  id: string | null;
  label: string;
  type: string;
  role: string | null;
  enabled: boolean;
  visible: boolean;
  hasClick: boolean;
}

export interface WindowView {
  id: number;
  name: string | null;
  url: string;
  title: string;
  visible: boolean;
  destroyed: boolean;
  options: Record<string, unknown>;
  webPreferences: Record<string, unknown>;
}

/** Where Electron keeps userData for this home on each platform (app.getPath('userData')). */
export function userDataDir(home: string, platform: Platform = 'linux'): string {
  if (platform === 'win32') return join(home, 'AppData', 'Roaming', APP_NAME);
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', APP_NAME);
  return join(home, '.config', APP_NAME);
}

export interface LaunchOptions {
  /** The app folder (from source), or a packaged layout's resources folder. */
  app: BuiltApp | { resources: string };
  home: string;
  browserWs: string;
  args?: string[];
  platform?: Platform;
  /** Written to userData/settings.json before the start. */
  settings?: Partial<Settings>;
  env?: NodeJS.ProcessEnv;
}

export function tempHome(prefix = 'ctll-home-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** How long an exited app's pipes are given to deliver the rest of its output. */
const PIPE_DRAIN_MS = 3000;

export class AppRun {
  readonly events: AppEvent[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly home: string;
  readonly platform: Platform;
  readonly #child: ChildProcess;
  readonly #server: net.Server;
  readonly #socketDir: string;
  readonly #connected: Promise<net.Socket>;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #waiters = new Set<() => void>();
  #nextId = 1;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(options: LaunchOptions) {
    this.home = options.home;
    this.platform = options.platform ?? 'linux';
    this.#socketDir = mkdtempSync(join(tmpdir(), 'ctll-ctl-'));
    const socketPath = join(this.#socketDir, 'control.sock');
    this.#server = net.createServer();
    this.#connected = new Promise((resolve) => this.#server.once('connection', resolve));
    this.#server.listen(socketPath);
    void this.#connected.then((socket) => this.#attach(socket));

    if (options.settings) {
      const dir = userDataDir(this.home, this.platform);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'settings.json'), JSON.stringify(options.settings));
    }
    const env: NodeJS.ProcessEnv = { ...process.env };
    // The app gets a session of its own: no desktop bus, no display, not a test runner child.
    for (const name of ['DBUS_SESSION_BUS_ADDRESS', 'DISPLAY', 'WAYLAND_DISPLAY', 'NODE_TEST_CONTEXT', 'NODE_OPTIONS', 'APPIMAGE', 'APPDATA']) delete env[name];
    Object.assign(env, {
      HOME: this.home,
      XDG_CONFIG_HOME: join(this.home, '.config'),
      XDG_DATA_HOME: join(this.home, '.local', 'share'),
      XDG_CACHE_HOME: join(this.home, '.cache'),
      CTLL_DOUBLE_CONTROL: socketPath,
      CTLL_DOUBLE_BROWSER: options.browserWs,
      CTLL_DOUBLE_PLATFORM: this.platform,
      CTLL_DOUBLE_OS_DIR: join(this.home, '.os'),
      ...options.env,
    });
    const target = 'root' in options.app ? [options.app.root] : ['--packaged', options.app.resources];
    this.#child = spawn(process.execPath, ['--import', TSX, CLI, ...target, ...(options.args ?? [])], {
      cwd: 'root' in options.app ? options.app.root : options.app.resources,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child.stdout!.setEncoding('utf8').on('data', (c: string) => this.stderr.push(c));
    this.#child.stderr!.setEncoding('utf8').on('data', (c: string) => this.stderr.push(c));
    // 'exit' can come before the last of the app's output has been read from its pipes (seen in
    // CI on a loaded machine: a test read no line of an app that had printed one), so the exit
    // is reported once both pipes have ended too; a grandchild holding them open is waited for at
    // most a few seconds.
    const drained = (stream: NodeJS.ReadableStream): Promise<void> => new Promise((resolve) => stream.once('close', resolve));
    const outputDone = Promise.all([drained(this.#child.stdout!), drained(this.#child.stderr!)]);
    this.exited = new Promise((resolve) => {
      this.#child.once('exit', async (code, signal) => {
        await Promise.race([outputDone, new Promise((r) => setTimeout(r, PIPE_DRAIN_MS).unref())]);
        this.#exit = { code, signal };
        this.#server.close();
        rmSync(this.#socketDir, { recursive: true, force: true });
        for (const p of this.#pending.values()) p.reject(new Error(`the app exited (${code ?? signal}) before answering`));
        this.#pending.clear();
        this.#wake();
        resolve(this.#exit);
      });
    });
  }

  get pid(): number {
    return this.#child.pid!;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  #attach(socket: net.Socket): void {
    createInterface({ input: socket }).on('line', (line) => {
      const message = JSON.parse(line) as Record<string, unknown>;
      if (typeof message['reply'] === 'number') {
        const pending = this.#pending.get(message['reply']);
        this.#pending.delete(message['reply']);
        if (message['ok']) pending?.resolve(message['value']);
        else pending?.reject(new Error(String(message['error'])));
      } else {
        this.events.push(message as AppEvent);
        this.#wake();
      }
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  async command<T = unknown>(command: string, args: Record<string, unknown> = {}): Promise<T> {
    const socket = await this.#connected;
    const id = this.#nextId++;
    const answer = new Promise<unknown>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    socket.write(`${JSON.stringify({ id, command, args })}\n`);
    return (await answer) as T;
  }

  /**
   * Resolves with the first event from index `since` on that `pick` maps to a value (now or
   * later); rejects if the app exits first, or after a bound that only catches hangs.
   */
  waitFor<T>(pick: (e: AppEvent) => T | undefined, what: string, options: { since?: number; timeoutMs?: number } = {}): Promise<T> {
    let index = options.since ?? 0;
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        for (; index < this.events.length; index++) {
          const value = pick(this.events[index]!);
          if (value !== undefined) {
            done();
            resolve(value);
            return;
          }
        }
        if (this.#exit) {
          done();
          reject(new Error(`the app exited (${this.#exit.code ?? this.#exit.signal}) before ${what}\n${this.output()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${options.timeoutMs ?? HANG_MS} ms; last tray: ${JSON.stringify(this.tray()?.toolTip)}\n${this.output()}`));
      }, options.timeoutMs ?? HANG_MS);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The number of events so far: pass as `since` to wait only for what comes next. */
  mark(): number {
    return this.events.length;
  }

  /** The tray as the last event showed it. */
  tray(): TrayView | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i]!;
      if (e.event === 'tray') return (e['tray'] as TrayView | null) ?? undefined;
    }
    return undefined;
  }

  /** The tray as it was just before event number `index`. */
  trayBefore(index: number): TrayView | undefined {
    for (let i = index - 1; i >= 0; i--) {
      const e = this.events[i]!;
      if (e.event === 'tray') return (e['tray'] as TrayView | null) ?? undefined;
    }
    return undefined;
  }

  waitForTray(predicate: (t: TrayView) => boolean, what: string, since?: number): Promise<TrayView> {
    return this.waitFor((e) => (e.event === 'tray' && e['tray'] && predicate(e['tray'] as TrayView) ? (e['tray'] as TrayView) : undefined), what, since === undefined ? {} : { since });
  }

  waitForWindow(name: string, action: 'created' | 'loaded' | 'shown' | 'hidden' | 'closed', since?: number): Promise<WindowView & { index: number }> {
    return this.waitFor(
      (e) => (e.event === 'window' && e['action'] === action && e['name'] === name ? { ...(e as unknown as WindowView), index: this.events.indexOf(e) } : undefined),
      `the ${name} window ${action}`,
      since === undefined ? {} : { since },
    );
  }

  /** The next URL the app hands to the system browser. */
  waitForBrowser(since?: number): Promise<{ url: string; ok: boolean; error?: string }> {
    return this.waitFor(
      (e) => (e.event === 'open-external' ? (e as unknown as { url: string; ok: boolean; error?: string }) : undefined),
      'a URL opened in the browser',
      since === undefined ? {} : { since },
    );
  }

  click(id: string): Promise<void> {
    return this.command('click', { id });
  }

  windows(): Promise<WindowView[]> {
    return this.command('windows');
  }

  inWindow<T = unknown>(window: string, op: string, args: Record<string, unknown> = {}): Promise<T> {
    return this.command<T>('window', { window, op, ...args });
  }

  /** Problems the app had that Electron would only have printed: unhandled rejections, preload errors... */
  problems(): string[] {
    return this.events
      .filter((e) => ['unhandled-rejection', 'uncaught-exception', 'preload-error', 'page-error', 'error-box'].includes(e.event) || (e.event === 'console' && e['type'] === 'error'))
      .map((e) => `${e.event}: ${String(e['message'] ?? e['text'] ?? e['content'])}`);
  }

  /** The app's log file (electron-log, main.log). */
  logText(): string {
    const file = join(userDataDir(this.home, this.platform), 'logs', 'main.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Waits until the app's log has a line matching `pattern` (the log is the app's own record). */
  async waitForLog(pattern: RegExp, what: string): Promise<string> {
    const deadline = Date.now() + HANG_MS;
    for (;;) {
      const line = this.logText().split('\n').find((l) => pattern.test(l));
      if (line) return line;
      if (!this.running) throw new Error(`the app exited before its log showed ${what}\n${this.output()}`);
      if (Date.now() > deadline) throw new Error(`the app's log did not show ${what} within ${HANG_MS} ms\n${this.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  output(): string {
    return `--- app output (last 4000 characters) ---\n${this.stderr.join('').slice(-4000)}`;
  }

  /** Quits from the tray and waits for the process to end. */
  async quit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exited;
    await this.click('quit');
    return this.exited;
  }

  /** Whether anything of the app's process group is still running. */
  groupAlive(): boolean {
    try {
      process.kill(-this.pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The processes of the app's group still running once the group has had its moment to wind
   * down (a child that lives on is reported, with its command line).
   */
  async leftoverProcesses(): Promise<string[]> {
    for (let i = 0; i < 100 && this.groupAlive(); i++) await new Promise((r) => setTimeout(r, 50));
    if (!this.groupAlive()) return [];
    // From /proc (no procps needed): field 5 of /proc/PID/stat is the process group.
    return readdirSync('/proc')
      .filter((pid) => /^\d+$/.test(pid))
      .flatMap((pid) => {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          const group = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2];
          if (group !== String(this.pid)) return [];
          return [`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()}`];
        } catch {
          return []; // gone meanwhile
        }
      });
  }

  /** Ends whatever is left of this run (its own process group only). */
  async kill(): Promise<void> {
    if (this.groupAlive()) process.kill(-this.pid, 'SIGKILL');
    if (this.running) await this.exited;
  }
}

export function launchApp(options: LaunchOptions): AppRun {
  return new AppRun(options);
}

// ---- what a test file shares: one build, one Chromium, one Ollama, its app runs ----

export interface Session {
  built: BuiltApp;
  /** The Chromium the app's windows and the "system browser" share. */
  server: BrowserServer;
  /** The test's own connection to it: the person's browser. */
  browser: Browser;
  emulator: OllamaEmulator;
  /** Starts the app with this session's build and browser; every run is ended by close(). */
  launch(options: Partial<LaunchOptions>): AppRun;
  close(): Promise<void>;
}

export async function startSession(): Promise<Session> {
  const emulator = new OllamaEmulator({ tokenIntervalMs: 5 });
  const [built, server] = await Promise.all([buildApp(), launchChromiumServer(), emulator.start()]);
  const browser = await chromium.connect(server.wsEndpoint());
  const runs: AppRun[] = [];
  const homes: string[] = [];
  return {
    built,
    server,
    browser,
    emulator,
    launch(options) {
      const home = options.home ?? tempHome();
      if (!options.home) homes.push(home);
      const run = launchApp({ app: built, browserWs: server.wsEndpoint(), ...options, home });
      runs.push(run);
      return run;
    },
    async close() {
      for (const run of runs) await run.kill();
      await browser.close();
      await server.close();
      await emulator.close();
      built.cleanup();
      for (const home of homes) rmSync(home, { recursive: true, force: true });
    },
  };
}

// ---- the person at the browser ----

/** Signs in on the embedded issuer's page the app opened, and waits for the loopback answer. */
export async function signInThroughBrowser(browser: Browser, url: string, username: string): Promise<void> {
  const page = await browser.newPage();
  try {
    await page.goto(url);
    await page.fill('#username', username);
    await Promise.all([page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/), page.click('button[value="sign-in"]')]);
    const heading = await page.locator('h1').textContent();
    if (heading !== 'Signed in') throw new Error(`the loopback page says "${heading}", not "Signed in"`);
  } finally {
    await page.close();
  }
}

/**
 * Sign in… from the tray, the sign-in page in the browser, and the tray at Connected (or the
 * state `connected` names). Returns the URL the app opened.
 */
export async function signInFromTray(app: AppRun, browser: Browser, username: string, connected: (toolTip: string) => boolean): Promise<string> {
  const since = app.mark();
  await app.click('sign-in');
  const opened = await app.waitForBrowser(since);
  if (!opened.ok) throw new Error(`the browser did not open: ${opened.error}`);
  await signInThroughBrowser(browser, opened.url, username);
  await app.waitForTray((t) => connected(t.toolTip), 'the connected tray', since);
  return opened.url;
}

/** The local stack's URLs, from the app's log ("cloud server listening"). */
export function localStackUrls(log: string): { api: string; issuer: string } | undefined {
  const m = /cloud server listening.*?"url":"(http:\/\/127\.0\.0\.1:\d+)".*?"issuer":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(log);
  return m ? { api: m[1]!, issuer: m[2]! } : undefined;
}

/** True when nothing listens on the URL's port any more. */
export function portClosed(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(port), hostname);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

export const runId = (): string => randomBytes(3).toString('hex');
