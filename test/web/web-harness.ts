/**
 * The web client's test stack: the built site (scripts/build-web.ts, into a temporary folder),
 * the cloud server as cloud-server.ts assembles it (in-process proxies, embedded issuer whose web
 * client redirects to <api origin>/app/, the static site as the API's fallback), the Ollama
 * emulator, and the user's bridge. Plus the Debian Chromium driven by Playwright.
 * No DOM types here: this file is type-checked as Node code, so page code is written as strings.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright';
import { Bridge } from '@cloudtolocalllm/bridge';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { buildWeb, type BuildWebResult } from '../../scripts/build-web.js';
import { MemoryAuditLog } from '@cloudtolocalllm/server/audit';
import { startCloudServer, type CloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig } from '@cloudtolocalllm/server/config';
import { silentLogger } from '@cloudtolocalllm/server/log';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { FAST_BACKOFF, FAST_HEARTBEAT, waitForState } from '../tunnel/harness.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'web');
export { CHROMIUM_PATH, chromiumUnavailable, launchChromium } from '../browser.js';

export interface WebStack {
  /** The API server's origin, which also serves the site: http://127.0.0.1:PORT */
  origin: string;
  server: CloudServer;
  site: BuildWebResult;
  emulator: OllamaEmulator;
  /** Starts (or restarts) a bridge for `user`, signed in through the desktop client; resolves once connected. */
  connectBridge(user: string): Promise<Bridge>;
  /** Stops the bridge of `user`; resolves once the server no longer sees it. */
  disconnectBridge(user: string): Promise<void>;
  close(): Promise<void>;
}

export async function startWebStack(options: { tokenIntervalMs?: number; defaultTokens?: number } = {}): Promise<WebStack> {
  const dir = await mkdtemp(join(tmpdir(), 'ctll-web-'));
  const site = await buildWeb(join(dir, 'web'));
  const emulator = new OllamaEmulator({ tokenIntervalMs: options.tokenIntervalMs ?? 2, defaultTokens: options.defaultTokens ?? 8 });
  const ollamaUrl = await emulator.start();
  // cloud-server.ts starts the API first, then the embedded issuer with the API's own origin as
  // the web client's redirect URI (<origin>/app/) and CORS origin, then serves webRoot.
  const server = await startCloudServer(loadConfig({}, ['--port', '0', '--runtime', 'process']), {
    webRoot: site.outDir,
    log: silentLogger,
    audit: new MemoryAuditLog(),
    heartbeat: FAST_HEARTBEAT,
  });
  const issuer = server.embeddedIssuer;
  if (!issuer) throw new Error('the web tests sign in through the embedded issuer');
  const bridges = new Map<string, Bridge>();

  const stack: WebStack = {
    origin: server.url,
    server,
    site,
    emulator,
    async connectBridge(user) {
      await stack.disconnectBridge(user);
      const tokens = await headlessSignIn({ issuer: issuer.issuer, clientId: issuer.desktopClientId, audience: server.audience, username: user });
      const bridge = new Bridge({
        proxyUrl: `${server.url.replace(/^http/, 'ws')}/ws/bridge`,
        getToken: () => tokens.accessToken,
        ollamaUrl,
        heartbeat: FAST_HEARTBEAT,
        backoff: FAST_BACKOFF,
      });
      bridges.set(user, bridge);
      bridge.start();
      await waitForState(bridge, 'connected');
      await waitUntil(() => server.manager.view(user).bridgeConnected, `the server sees ${user}'s bridge`);
      return bridge;
    },
    async disconnectBridge(user) {
      const bridge = bridges.get(user);
      if (!bridge) return;
      bridges.delete(user);
      await bridge.stop();
      await waitUntil(() => !server.manager.view(user).bridgeConnected, `the server notices ${user}'s bridge is gone`);
    },
    async close() {
      await Promise.all([...bridges.values()].map((b) => b.stop()));
      await server.close();
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Waits until an expression is truthy in the page. Playwright's waitForFunction evaluates its
 * predicate with eval inside the page, which the site's CSP (rightly) refuses.
 */
export async function waitInPage(page: Page, expression: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: unknown;
    try {
      value = await page.evaluate(expression);
    } catch (err) {
      // A navigation under way destroys the context; ask the next page.
      if (!/context was destroyed|navigation/i.test(String(err))) throw err;
    }
    if (value) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Chromium fails requests in flight with net::ERR_NETWORK_CHANGED when the machine's network
 * interfaces change, which tests that create Docker networks in parallel do. Only that is retried.
 */
export function isNetworkChange(err: unknown): boolean {
  return /ERR_NETWORK_CHANGED/.test(String(err));
}

export async function retryOnNetworkChange<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isNetworkChange(err) || attempt >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

export async function inPage<T>(page: Page, expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Records CSP violations in every page of the context, before any page script runs. */
export const CSP_WATCH = `(() => {
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline'));
  });
})();`;

export interface ConsoleWatch {
  messages: string[];
  /** Console errors and page errors, less the browser's own note on each refused HTTP status. */
  errors(): string[];
}

export function watchConsole(page: Page): ConsoleWatch {
  const messages: string[] = [];
  page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => messages.push(`pageerror: ${e.message}`));
  return {
    messages,
    // Chromium logs "Failed to load resource: ... status of 503" for every non-2xx fetch; the
    // tests cause those on purpose (bridge down, refused token).
    errors: () => messages.filter((m) => /^(error|pageerror):/.test(m) && !/Failed to load resource: the server responded with a status of (401|503)/.test(m)),
  };
}
