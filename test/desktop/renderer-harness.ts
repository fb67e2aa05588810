/**
 * What the renderer tests share: the built windows served over http://127.0.0.1 (so the CSP's
 * 'self' means what it means in the app), the Debian Chromium driven by Playwright, and a fake
 * `window.ctll` standing in for the preload, whose answers the test sets and whose calls it reads.
 * No DOM types here: this file is type-checked as Node code, so page code is written as strings.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import type { Browser, Page } from 'playwright';
import type { ClientKeys } from '../../main/client-keys.js';
import type { AboutInfo, CreateKeyRequest, DesktopApi, OllamaTestResult, SaveSettingsResult, StatusView } from '../../main/ipc-contract.js';
import { DEFAULT_SETTINGS, type Settings } from '../../main/settings/settings.js';
import { buildRenderer, type BuildRendererResult } from '../../scripts/build-renderer.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'desktop');
import { launchChromium } from '../browser.js';
export { CHROMIUM_PATH, chromiumUnavailable, launchChromium } from '../browser.js';

/** Builds into a directory of its own, so test files running in parallel never read a half-written build. */
export async function buildIntoTemp(): Promise<BuildRendererResult & { cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ctll-renderer-'));
  const result = await buildRenderer({ outDir: join(dir, 'renderer'), preloadFile: join(dir, 'main', 'preload.cjs') });
  return { ...result, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** What a renderer suite drives: Chromium and the built windows served over http. */
export interface BuiltRenderer {
  readonly browser: Browser;
  readonly server: StaticServer;
}

/**
 * Registers the calling suite's `before` and `after`: the renderer built into a temp directory,
 * Chromium launched meanwhile, the build served; all of it closed after. Call it inside
 * `describe`; the fields are set once the suite's first `before` has run.
 */
export function useBuiltRenderer(): BuiltRenderer {
  let browser: Browser | undefined;
  let server: StaticServer | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  before(async () => {
    const [built, launched] = await Promise.all([buildIntoTemp(), launchChromium()]);
    browser = launched;
    cleanup = built.cleanup;
    server = await serveDirectory(built.outDir);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await cleanup?.();
  });
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the renderer suite's ${what} is used before its before() ran`);
    return value;
  };
  return {
    get browser() { return ready(browser, 'browser'); },
    get server() { return ready(server, 'server'); },
  };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

export interface StaticServer {
  origin: string;
  /** Paths the browser asked for, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** A static file server on 127.0.0.1, GET only, nothing outside `dir`. */
export async function serveDirectory(dir: string): Promise<StaticServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    if (path === '/favicon.ico') {
      // Chromium asks any http page for one; Electron windows loaded from files never do.
      res.writeHead(204).end();
      return;
    }
    const file = normalize(join(dir, path));
    if (req.method !== 'GET' || !file.startsWith(dir + sep) || !TYPES[extname(file)]) {
      res.writeHead(404).end();
      return;
    }
    readFile(file).then(
      (body) => res.writeHead(200, { 'content-type': TYPES[extname(file)]!, 'cache-control': 'no-store' }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const DESKTOP_API_METHODS = [
  'getSettings',
  'saveSettings',
  'testOllama',
  'getStatus',
  'onStatus',
  'signIn',
  'signOut',
  'getAbout',
  'openExternal',
  'openLogs',
  'listKeys',
  'createKey',
  'revokeKey',
  'writeClipboard',
] as const satisfies ReadonlyArray<keyof DesktopApi>;
// Fails to compile when the contract gains a method this list (and so the fake) lacks.
const everyMethodListed: Exclude<keyof DesktopApi, (typeof DESKTOP_API_METHODS)[number]> extends never ? true : never = true;
void everyMethodListed;

export type ApiMethod = (typeof DESKTOP_API_METHODS)[number];
export interface ApiCall {
  method: ApiMethod | 'unsubscribeStatus';
  args: unknown[];
}

/**
 * The page side of the fake preload, run before any page script. Shaped like what
 * contextBridge gives a page: a frozen `window.ctll` whose methods only pass plain values.
 */
const FAKE_PRELOAD = `(() => {
  const call = (method, args) => window.__ctllFake(method, args);
  const listeners = new Set();
  const api = {};
  for (const method of ${JSON.stringify(DESKTOP_API_METHODS)}) {
    api[method] = (...args) => call(method, args);
  }
  api.onStatus = (callback) => {
    listeners.add(callback);
    void call('onStatus', []);
    return () => {
      listeners.delete(callback);
      void call('unsubscribeStatus', []);
    };
  };
  Object.defineProperty(window, 'ctll', { value: Object.freeze(api), enumerable: true });
  Object.defineProperty(window, '__ctllPushStatus', {
    value: (status) => {
      for (const listener of [...listeners]) listener(status);
      return listeners.size;
    },
  });
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline'));
  });
})();`;

export function sampleStatus(overrides: Partial<StatusView> = {}): StatusView {
  return {
    trayState: 'signed-out',
    statusLine: 'Signed out',
    account: { signedIn: false },
    bridge: { state: 'idle' },
    proxy: { state: 'idle' },
    ollama: { reachable: undefined },
    counters: { requests: 0, bytesIn: 0, bytesOut: 0, activeStreams: 0 },
    keychain: { available: true, detail: 'Tokens are kept in the system keychain (Secret Service)' },
    ...overrides,
  };
}

export const SAMPLE_ABOUT: AboutInfo = {
  name: 'CloudToLocalLLM',
  version: '0.1.0',
  electron: '45.5.0',
  node: '22.20.0',
  chromium: '140.0.7339.249',
  license: 'MIT',
  links: [
    { label: 'Website', url: 'https://cloudtolocalllm.online' },
    { label: 'Source code', url: 'https://github.com/imrightguy/CloudToLocalLLM' },
    { label: 'Report a problem', url: 'https://github.com/imrightguy/CloudToLocalLLM/issues' },
  ],
};

/** The main process as the windows see it: state the test sets, answers the test may replace, calls it reads. */
export class FakeDesktop {
  readonly calls: ApiCall[] = [];
  settings: Settings = structuredClone(DEFAULT_SETTINGS);
  status: StatusView = sampleStatus();
  about: AboutInfo = structuredClone(SAMPLE_ABOUT);

  onSave: (settings: Settings) => SaveSettingsResult | Promise<SaveSettingsResult> = (settings) => {
    this.settings = structuredClone(settings);
    return { ok: true, settings };
  };
  onTestOllama: (url: string) => OllamaTestResult | Promise<OllamaTestResult> = (url) => ({ ok: true, version: '0.12.3', modelCount: 3, url });
  onSignIn: () => { ok: true } | { ok: false; error: string } = () => {
    this.status = sampleStatus({
      trayState: 'connecting',
      statusLine: 'Connecting to cloud.example.com',
      account: { signedIn: true, name: 'Ada Lovelace', issuer: 'https://auth.example.com' },
    });
    return { ok: true };
  };
  onSignOut: () => void = () => {
    this.status = sampleStatus();
  };
  /**
   * The main process's real key service (main/client-keys.ts) when the test gives it one (on a
   * KeyStore of a temporary directory); without, the window is told nobody has signed in.
   */
  keys: ClientKeys | undefined;
  /** What the window put on the clipboard, in order (main's clipboard.writeText). */
  readonly clipboard: string[] = [];

  private async handle(method: ApiCall['method'], args: unknown[]): Promise<unknown> {
    this.calls.push({ method, args: structuredClone(args) });
    switch (method) {
      case 'getSettings':
        return structuredClone(this.settings);
      case 'saveSettings':
        return this.onSave(args[0] as Settings);
      case 'testOllama':
        return this.onTestOllama(args[0] as string);
      case 'getStatus':
        return structuredClone(this.status);
      case 'signIn':
        return this.onSignIn();
      case 'signOut':
        return this.onSignOut();
      case 'getAbout':
        return structuredClone(this.about);
      case 'listKeys':
        return this.keys ? this.keys.list() : { endpoint: null, signedIn: false, keys: [] };
      case 'createKey':
        return this.keys ? this.keys.create(args[0] as CreateKeyRequest) : { ok: false, errors: { form: 'no key service in this test' } };
      case 'revokeKey':
        return this.keys ? this.keys.revoke(args[0]) : { ok: false, error: 'no key service in this test' };
      case 'writeClipboard':
        this.clipboard.push(args[0] as string);
        return undefined;
      case 'onStatus':
      case 'unsubscribeStatus':
      case 'openExternal':
      case 'openLogs':
        return undefined;
    }
  }

  /** Installs `window.ctll` in the page (and every page it loads) before the page's own scripts. */
  async install(page: Page): Promise<void> {
    await page.exposeBinding('__ctllFake', (_source, method: ApiCall['method'], args: unknown[]) => this.handle(method, args));
    await page.addInitScript(FAKE_PRELOAD);
  }

  callsOf(method: ApiCall['method']): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  /** What main does on a status change: sends it to every window. Returns how many listeners got it. */
  async pushStatus(page: Page, status: StatusView): Promise<number> {
    this.status = structuredClone(status);
    return (await page.evaluate(`window.__ctllPushStatus(${JSON.stringify(status)})`)) as number;
  }
}

export interface ConsoleWatch {
  /** Console messages and page errors, as "type: text". */
  messages: string[];
  /** Console errors and uncaught exceptions, less Chromium's note about frame-ancestors in a <meta> CSP. */
  errors(): string[];
  /** Messages about the Content-Security-Policy, from the console and from securitypolicyviolation events. */
  cspViolations(): Promise<string[]>;
}

// Chromium notes that a <meta> CSP cannot carry frame-ancestors; that is advice, not a violation.
const META_IGNORED = /'frame-ancestors' is ignored when delivered via a <meta> element/;

export function watchConsole(page: Page): ConsoleWatch {
  const messages: string[] = [];
  page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => messages.push(`pageerror: ${e.message}`));
  return {
    messages,
    errors: () => messages.filter((m) => /^(error|pageerror):/.test(m) && !META_IGNORED.test(m)),
    async cspViolations() {
      const fromEvents = (await page.evaluate('window.__cspViolations ?? []')) as string[];
      const fromConsole = messages.filter((m) => /Content Security Policy/i.test(m) && !META_IGNORED.test(m));
      return [...fromConsole, ...fromEvents];
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, name);
  // A window as tall as the page, rather than fullPage's stitched capture, so the sticky Save
  // bar sits at the bottom as it does on screen instead of floating mid-page.
  const viewport = page.viewportSize();
  const height = await inPage<number>(page, 'document.documentElement.scrollHeight');
  if (viewport) await page.setViewportSize({ width: viewport.width, height: Math.max(height, viewport.height) });
  await page.screenshot({ path, fullPage: true });
  if (viewport) await page.setViewportSize(viewport);
  return path;
}

/**
 * Waits until an expression is truthy in the page. Playwright's waitForFunction evaluates its
 * predicate with eval inside the page, which these windows' CSP (rightly) refuses.
 */
export async function waitInPage(page: Page, expression: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until a condition on the Node side (e.g. a recorded API call) holds. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Evaluates an expression in the page; typed loosely since this program has no DOM types. */
export async function inPage<T>(page: Page, expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}
