/**
 * BrowserWindow and webContents, with each window's page in a real Chromium (Debian's, through
 * Playwright; one browser context per app, like Electron's default session):
 *
 * - loadFile/loadURL load the real file; before the page's own scripts, the session's preload
 *   scripts and then webPreferences.preload run in an isolated world with Electron's sandboxed
 *   preload environment (world-bridge.ts). Only sandboxed, context-isolated windows are
 *   supported: anything else fails loudly, so a weakened window cannot pass unnoticed.
 * - The page's <title> replaces the window's title ('page-title-updated', unless prevented).
 * - 'ready-to-show' after the first load; show()/hide() report to the test.
 * - Navigation the page starts emits 'will-navigate' (prevented: it does not happen);
 *   window.open and target=_blank go through setWindowOpenHandler; only 'deny' is supported.
 * - ipcRenderer.invoke reaches ipcMain with the calling frame as senderFrame.
 * - webPreferences are recorded as given, for the test to check.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright';
import { launchChromium } from '../../browser.js';
import type { App } from './app.js';
import { ElectronEvent } from './app.js';
import { control } from './control.js';
import { ipcMain, session, type InvokeEvent, type Session, type WebFrameMainLike } from './shell-ipc-session.js';
import { isolatedWorldScript, mainWorldScript } from './world-bridge.js';

const WORLD = 'electron-double-preload';
const BINDING = '__electronDoubleBinding';

let appRef: App;
let browserPromise: Promise<{ browser: Browser; context: BrowserContext }> | undefined;

/** Chromium for every window of this app: the test's browser server when given, else our own. */
function browserContext(): Promise<{ browser: Browser; context: BrowserContext }> {
  browserPromise ??= (async () => {
    const ws = process.env['CTLL_DOUBLE_BROWSER'];
    const browser = ws ? await chromium.connect(ws) : await launchChromium();
    const context = await browser.newContext({ colorScheme: 'light' });
    context.setDefaultTimeout(15_000);
    return { browser, context };
  })();
  return browserPromise;
}

export function bindWindows(app: App): void {
  appRef = app;
  app.closeAllWindows = async () => {
    for (const w of BrowserWindow.getAllWindows()) {
      if (!(await w.closeForQuit())) return false;
    }
    return true;
  };
  app.beforeExit = async () => {
    if (!browserPromise) return;
    const { browser } = await browserPromise;
    await browser.close();
  };
}

type OpenHandler = (details: { url: string; frameName: string; features: string; disposition: string; referrer: { url: string; policy: string } }) => { action: 'allow' | 'deny' };

let nextWebContentsId = 1;

export class WebContents extends EventEmitter {
  static readonly all = new Set<WebContents>();
  readonly id = nextWebContentsId++;
  readonly session: Session;
  readonly #window: BrowserWindow;
  readonly #nonce = randomBytes(12).toString('hex');
  #page: Promise<Page> | undefined;
  #cdp: CDPSession | undefined;
  #isolatedContext: number | undefined;
  #url = '';
  #destroyed = false;
  #loading = false;
  #openHandler: OpenHandler | undefined;
  #scripts: string[] = [];

  constructor(window: BrowserWindow) {
    super();
    this.#window = window;
    this.session = session.defaultSession;
    WebContents.all.add(this);
  }

  page(): Promise<Page> {
    this.#page ??= this.#createPage();
    return this.#page;
  }

  async #createPage(): Promise<Page> {
    const { context } = await browserContext();
    const page = await context.newPage();
    const { width, height } = this.#window.contentSize;
    await page.setViewportSize({ width, height });
    const cdp = await context.newCDPSession(page);
    this.#cdp = cdp;
    await cdp.send('Runtime.enable');
    await cdp.send('Page.enable');
    await cdp.send('Runtime.addBinding', { name: BINDING, executionContextName: WORLD });
    cdp.on('Runtime.bindingCalled', (e) => {
      if (e.name === BINDING) void this.#fromRenderer(e.executionContextId, JSON.parse(e.payload) as Record<string, unknown>);
    });
    cdp.on('Page.windowOpen', (e) => this.#onWindowOpen(e.url, e.windowName, e.windowFeatures));
    // Popups never stay: only 'deny' is supported (see #onWindowOpen).
    page.on('popup', (popup) => void popup.close());
    page.on('console', (m) => control.event('console', { window: this.#window.id, type: m.type(), text: m.text() }));
    page.on('pageerror', (e) => control.event('page-error', { window: this.#window.id, message: e.message }));
    await page.route('**/*', async (route) => {
      const request = route.request();
      if (!request.isNavigationRequest() || request.frame() !== page.mainFrame() || this.#loading) {
        await route.continue();
        return;
      }
      const event = new ElectronEvent();
      this.emit('will-navigate', event, request.url());
      control.event('will-navigate', { window: this.#window.id, url: request.url(), prevented: event.defaultPrevented });
      if (event.defaultPrevented) await route.abort('aborted');
      else await route.continue();
    });
    return page;
  }

  async loadURL(url: string): Promise<void> {
    const prefs = this.#window.webPreferences;
    if (prefs['sandbox'] === false || prefs['contextIsolation'] === false || prefs['nodeIntegration'] === true) {
      throw new Error('the Electron double runs only sandboxed, context-isolated windows without Node integration');
    }
    const page = await this.page();
    const cdp = this.#cdp!;
    for (const identifier of this.#scripts) await cdp.send('Page.removeScriptToEvaluateOnNewDocument', { identifier });
    const preloadPaths = [
      ...this.session.getPreloadScripts().filter((p) => p.type === 'frame').map((p) => p.filePath),
      ...(typeof prefs['preload'] === 'string' ? [prefs['preload']] : []),
    ];
    const preloads = preloadPaths.map((path) => ({ path, source: readFileSync(path, 'utf8') }));
    const processInfo = {
      type: 'renderer',
      sandboxed: true,
      contextIsolated: true,
      platform: process.platform,
      arch: process.arch,
      versions: { ...process.versions },
      env: {},
      argv: [],
      execPath: process.execPath,
      pid: process.pid,
    };
    const main = await cdp.send('Page.addScriptToEvaluateOnNewDocument', { source: mainWorldScript(this.#nonce) });
    const isolated = await cdp.send('Page.addScriptToEvaluateOnNewDocument', {
      source: isolatedWorldScript({ nonce: this.#nonce, binding: BINDING, preloads, process: processInfo }),
      worldName: WORLD,
    });
    this.#scripts = [main.identifier, isolated.identifier];
    this.#loading = true;
    this.#url = url;
    try {
      await page.goto(url, { waitUntil: 'load' });
    } catch (e) {
      this.emit('did-fail-load', new ElectronEvent(), -6, (e as Error).message, url, true);
      throw new Error(`ERR_FAILED (-2) loading '${url}': ${(e as Error).message}`);
    } finally {
      this.#loading = false;
    }
    this.emit('did-finish-load', new ElectronEvent());
    await this.#window.pageLoaded(await page.title());
  }

  async #fromRenderer(contextId: number, message: Record<string, unknown>): Promise<void> {
    const op = message['op'];
    if (op === 'hello') {
      this.#isolatedContext = contextId;
      this.#url = String(message['url']);
      return;
    }
    if (op === 'preload-error') {
      const error = new Error(String(message['message']));
      this.emit('preload-error', new ElectronEvent(), message['path'], error);
      control.event('preload-error', { window: this.#window.id, path: message['path'], message: error.message });
      return;
    }
    const channel = String(message['channel']);
    const args = message['args'] as unknown[];
    const event = this.#invokeEvent(this.mainFrame);
    if (op === 'send') {
      ipcMain.emit(channel, { ...event, returnValue: undefined, reply: (ch: string, ...a: unknown[]) => this.send(ch, ...a) }, ...args);
      return;
    }
    if (op === 'invoke') {
      const result = await ipcMain.invoke(channel, event, args);
      await this.#toRenderer({ op: 'reply', invoke: message['invoke'], ...result });
    }
  }

  #invokeEvent(frame: WebFrameMainLike): InvokeEvent {
    return { type: 'frame', sender: this, senderFrame: frame, processId: process.pid, frameId: 1 };
  }

  /** Not Electron API: an invoke as a frame at `frameUrl` would make it (a foreign page's call). */
  invokeAs(channel: string, frameUrl: string, args: unknown[]): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
    return ipcMain.invoke(channel, this.#invokeEvent(frameOf(frameUrl)), args);
  }

  async #toRenderer(message: Record<string, unknown>): Promise<void> {
    if (this.#destroyed || this.#isolatedContext === undefined || !this.#cdp) return;
    await this.#cdp
      .send('Runtime.evaluate', { expression: `globalThis.__electronDoubleFromNode(${JSON.stringify(JSON.stringify(message))})`, contextId: this.#isolatedContext })
      .catch(() => undefined); // the page went away meanwhile
  }

  #onWindowOpen(url: string, frameName: string, features: string[]): void {
    const details = { url, frameName, features: features.join(','), disposition: 'new-window', referrer: { url: this.#url, policy: 'strict-origin-when-cross-origin' } };
    const action = this.#openHandler ? this.#openHandler(details).action : 'allow';
    control.event('window-open', { window: this.#window.id, url, action });
    if (action !== 'deny') control.event('uncaught-exception', { message: `the Electron double cannot open new windows (window.open(${url}) was allowed)` });
  }

  send(channel: string, ...args: unknown[]): void {
    if (this.#destroyed) throw new Error('Object has been destroyed');
    // Electron serialises with the structured clone algorithm: a function fails here, not later.
    const cloned = structuredClone(args);
    void this.#toRenderer({ op: 'deliver', channel, args: cloned });
  }

  setWindowOpenHandler(handler: OpenHandler): void {
    this.#openHandler = handler;
  }

  get mainFrame(): WebFrameMainLike {
    return frameOf(this.#url);
  }

  getURL(): string {
    return this.#url;
  }

  getTitle(): string {
    return this.#window.getTitle();
  }

  isLoading(): boolean {
    return this.#loading;
  }

  isDestroyed(): boolean {
    return this.#destroyed;
  }

  isCrashed(): boolean {
    return false;
  }

  focus(): void {}

  async executeJavaScript(code: string): Promise<unknown> {
    return (await this.page()).evaluate(code);
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    WebContents.all.delete(this);
    this.emit('destroyed');
    if (this.#page) await (await this.#page).close().catch(() => undefined);
  }
}

function frameOf(url: string): WebFrameMainLike {
  let origin = 'null';
  try {
    const u = new URL(url);
    origin = u.protocol === 'file:' ? 'file://' : u.origin;
  } catch {
    // an empty or odd URL has no origin
  }
  const frame: WebFrameMainLike = { url, origin, name: '', top: null, parent: null, frameTreeNodeId: 1, processId: process.pid, routingId: 1 };
  frame.top = frame;
  return frame;
}

let nextWindowId = 1;

export class BrowserWindow extends EventEmitter {
  static readonly #windows = new Map<number, BrowserWindow>();
  readonly id = nextWindowId++;
  readonly options: Record<string, unknown>;
  readonly webPreferences: Record<string, unknown>;
  readonly webContents: WebContents;
  #title: string;
  #visible = false;
  #minimized = false;
  #destroyed = false;
  #shownOnce = false;
  #bounds: { x: number; y: number; width: number; height: number };

  static getAllWindows(): BrowserWindow[] {
    return [...BrowserWindow.#windows.values()];
  }

  static getFocusedWindow(): BrowserWindow | null {
    return BrowserWindow.getAllWindows().find((w) => w.isVisible()) ?? null;
  }

  static fromWebContents(contents: WebContents): BrowserWindow | null {
    return BrowserWindow.getAllWindows().find((w) => w.webContents === contents) ?? null;
  }

  static fromId(id: number): BrowserWindow | null {
    return BrowserWindow.#windows.get(id) ?? null;
  }

  constructor(options: Record<string, unknown> = {}) {
    super();
    if (!appRef?.isReady()) throw new Error('Cannot create BrowserWindow before app is ready');
    this.options = structuredClone({ ...options });
    this.webPreferences = { ...((options['webPreferences'] as Record<string, unknown> | undefined) ?? {}) };
    this.#title = typeof options['title'] === 'string' ? options['title'] : appRef.name;
    this.#bounds = { x: 0, y: 0, width: Number(options['width'] ?? 800), height: Number(options['height'] ?? 600) };
    BrowserWindow.#windows.set(this.id, this);
    this.webContents = new WebContents(this);
    control.event('window', { action: 'created', ...this.describe() });
    if (options['show'] !== false) this.show();
  }

  get contentSize(): { width: number; height: number } {
    return { width: this.#bounds.width, height: this.#bounds.height };
  }

  loadFile(filePath: string, options: { query?: Record<string, string>; hash?: string } = {}): Promise<void> {
    const url = pathToFileURL(resolve(filePath));
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
    if (options.hash) url.hash = options.hash;
    return this.loadURL(url.href);
  }

  loadURL(url: string): Promise<void> {
    return this.webContents.loadURL(url);
  }

  /** Called once a load finished: the page's title wins, then 'ready-to-show'. */
  async pageLoaded(pageTitle: string): Promise<void> {
    this.updateTitle(pageTitle);
    control.event('window', { action: 'loaded', ...this.describe() });
    if (!this.#shownOnce) {
      this.#shownOnce = true;
      this.emit('ready-to-show');
    }
  }

  updateTitle(pageTitle: string): void {
    if (!pageTitle || pageTitle === this.#title) return;
    const event = new ElectronEvent();
    this.emit('page-title-updated', event, pageTitle, true);
    if (!event.defaultPrevented) this.#title = pageTitle;
  }

  show(): void {
    if (this.#destroyed) return;
    this.#minimized = false;
    if (this.#visible) return;
    this.#visible = true;
    this.emit('show');
    control.event('window', { action: 'shown', ...this.describe() });
  }

  showInactive(): void {
    this.show();
  }

  hide(): void {
    if (this.#destroyed || !this.#visible) return;
    this.#visible = false;
    this.emit('hide');
    control.event('window', { action: 'hidden', ...this.describe() });
  }

  isVisible(): boolean {
    return this.#visible && !this.#minimized;
  }

  focus(): void {
    this.emit('focus');
  }

  blur(): void {
    this.emit('blur');
  }

  isFocused(): boolean {
    return this.isVisible();
  }

  minimize(): void {
    this.#minimized = true;
    this.emit('minimize');
  }

  isMinimized(): boolean {
    return this.#minimized;
  }

  restore(): void {
    this.#minimized = false;
    this.emit('restore');
  }

  getTitle(): string {
    return this.#title;
  }

  setTitle(title: string): void {
    this.#title = title;
  }

  getBounds(): { x: number; y: number; width: number; height: number } {
    return { ...this.#bounds };
  }

  setBounds(bounds: Partial<{ x: number; y: number; width: number; height: number }>): void {
    this.#bounds = { ...this.#bounds, ...bounds };
  }

  getSize(): [number, number] {
    return [this.#bounds.width, this.#bounds.height];
  }

  setMenuBarVisibility(_visible: boolean): void {}

  removeMenu(): void {}

  setIcon(_icon: unknown): void {}

  center(): void {}

  isDestroyed(): boolean {
    return this.#destroyed;
  }

  /** As the user closing it: 'close' (which may be prevented), then gone. */
  close(): void {
    void this.#close(false);
  }

  /** Not Electron API: close() that says whether the window went (the test's "user closes it"). */
  closeByUser(): Promise<boolean> {
    return this.#close(false);
  }

  /** During quit: the same, but 'window-all-closed' is not emitted. */
  async closeForQuit(): Promise<boolean> {
    return this.#close(true);
  }

  async #close(quitting: boolean): Promise<boolean> {
    if (this.#destroyed) return true;
    const event = new ElectronEvent();
    this.emit('close', event);
    if (event.defaultPrevented) return false;
    await this.#destroy(quitting);
    return true;
  }

  destroy(): void {
    void this.#destroy(false);
  }

  async #destroy(quitting: boolean): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#visible = false;
    BrowserWindow.#windows.delete(this.id);
    await this.webContents.destroy();
    this.emit('closed');
    control.event('window', { action: 'closed', ...this.describe() });
    if (!quitting && BrowserWindow.#windows.size === 0) {
      // Electron's default without a 'window-all-closed' listener is to quit.
      if (appRef.listenerCount('window-all-closed') > 0) appRef.emit('window-all-closed');
      else appRef.quit();
    }
  }

  describe(): Record<string, unknown> {
    const url = this.webContents.getURL();
    return {
      id: this.id,
      name: url ? basename(new URL(url).pathname, '.html') : null,
      url,
      title: this.#title,
      visible: this.isVisible(),
      destroyed: this.#destroyed,
      options: { ...this.options, webPreferences: undefined },
      webPreferences: this.webPreferences,
    };
  }
}

function windowOf(args: Record<string, unknown>): BrowserWindow {
  const key = args['window'];
  const win = BrowserWindow.getAllWindows().find((w) => w.id === key || w.describe()['name'] === key);
  if (!win) throw new Error(`no open window "${String(key)}" (open: ${BrowserWindow.getAllWindows().map((w) => w.describe()['name']).join(', ') || 'none'})`);
  return win;
}

async function refreshTitles(): Promise<void> {
  for (const w of BrowserWindow.getAllWindows()) {
    if (w.webContents.getURL()) w.updateTitle(await (await w.webContents.page()).title());
  }
}

control.on('windows', async () => {
  await refreshTitles();
  return BrowserWindow.getAllWindows().map((w) => w.describe());
});

/** What the test (as the person at the screen) does in a window. */
control.on('window', async (args) => {
  const win = windowOf(args);
  const op = String(args['op']);
  if (op === 'close') {
    return { closed: await win.closeByUser() };
  }
  const page = await win.webContents.page();
  const selector = String(args['selector'] ?? '');
  switch (op) {
    case 'evaluate':
      return page.evaluate(String(args['expression']));
    case 'click':
      await page.locator(selector).click();
      return null;
    case 'fill':
      await page.locator(selector).fill(String(args['value']));
      return null;
    case 'check':
      await page.locator(selector).setChecked(args['value'] === true);
      return null;
    case 'wait':
      await page.locator(selector).waitFor({ state: 'visible' });
      return null;
    case 'text':
      return page.locator(selector).textContent();
    case 'screenshot':
      await page.screenshot({ path: String(args['path']), fullPage: true });
      return null;
    default:
      throw new Error(`unknown window operation "${op}"`);
  }
});

control.on('invoke-as', async (args) => {
  const contents = [...WebContents.all][0];
  if (!contents) throw new Error('no window is open to send from');
  return contents.invokeAs(String(args['channel']), String(args['frameUrl']), (args['args'] as unknown[]) ?? []);
});

control.on('permission', async (args) => {
  const win = windowOf(args);
  const handler = win.webContents.session.permissionRequestHandler;
  if (!handler) return { handled: false };
  return new Promise((resolve) => handler(win.webContents, String(args['permission']), (granted) => resolve({ handled: true, granted }), { requestingUrl: win.webContents.getURL() }));
});
