/**
 * Each bundle `npm run build:desktop` makes is loaded the way it is used, without a browser, so a
 * bundling mistake (a CommonJS global missing in an ES module, a dependency left out, a preload
 * that requires what a sandbox has not) fails the build:
 *
 * - dist/main/local-stack.js in plain Node: the cloud server starts, says where to sign in,
 *   serves the web client, and once closed leaves the process nothing to wait for.
 * - dist/main/main.js under the Electron double: tray up, Quit, exit 0.
 * - dist/main/preload.cjs in a context with only what Electron's sandbox gives a preload.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';
import { buildApp, launchApp, PRODUCT_LINE, tempHome, type BuiltApp } from './app-harness.js';
import { DESKTOP_API_METHODS } from './renderer-harness.js';

describe('the desktop bundles load as they are used', () => {
  let built: BuiltApp;
  before(async () => {
    built = await buildApp();
  });
  after(() => built?.cleanup());

  test('dist/main/local-stack.js: the cloud server starts in plain Node, serves the web client, and closes completely', async () => {
    const bundle = pathToFileURL(join(built.root, 'dist', 'main', 'local-stack.js')).href;
    // The process must end by itself after close(): anything still open would keep it alive.
    const script = `
      const { startLocalStack } = await import(${JSON.stringify(bundle)});
      const stack = await startLocalStack(() => {});
      const config = await (await fetch(stack.url + '/api/config')).json();
      const page = await fetch(stack.url + '/');
      console.log(JSON.stringify({ config: Object.keys(config).sort(), page: page.status, type: page.headers.get('content-type') }));
      await stack.close();`;
    const env: NodeJS.ProcessEnv = { ...process.env, CTLL_RUNTIME: 'process' };
    delete env['NODE_TEST_CONTEXT'];
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, err);
    assert.deepEqual(JSON.parse(out), { config: ['audience', 'desktopClientId', 'issuer', 'webClientId'], page: 200, type: 'text/html; charset=utf-8' });
  });

  // No window is opened, so no browser is needed. Either server problem is said as it is: nobody
  // tried to sign in, so neither is a "sign-in failed".
  for (const [what, settings, env, said] of [
    ['a cloud server that does not answer', { cloudServerUrl: 'http://127.0.0.1:9' }, {}, 'Error: the cloud server at http://127.0.0.1:9 cannot be reached'],
    ['a local stack that cannot start', {}, { CTLL_RUNTIME: 'docker', DOCKER_HOST: 'unix:///nonexistent/docker.sock' }, 'Error: the cloud server on this computer could not start: --runtime docker was asked for, but the Docker engine does not answer'],
  ] as const) {
    test(`dist/main/main.js under the Electron double: the tray says what is wrong with ${what}, and Quit ends it`, async () => {
      const home = tempHome();
      try {
        const app = launchApp({ app: built, home, browserWs: '', settings, env });
        const tray = await app.waitForTray((t) => t.menu !== null && t.toolTip.startsWith(`${PRODUCT_LINE}\nError`), 'the tray saying what is wrong');
        assert.ok(tray.toolTip.startsWith(`${PRODUCT_LINE}\n${said}`), tray.toolTip);
        assert.equal(tray.image.empty, false);
        assert.deepEqual(await app.quit(), { code: 0, signal: null });
        assert.deepEqual(app.problems(), []);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    });
  }

  test("dist/main/preload.cjs needs only what Electron's sandbox gives a preload, and exposes exactly window.ctll", () => {
    const exposed = new Map<string, Record<string, unknown>>();
    const required: string[] = [];
    const electron = {
      contextBridge: { exposeInMainWorld: (key: string, api: Record<string, unknown>) => exposed.set(key, api) },
      ipcRenderer: { invoke: async () => undefined, on: () => undefined, removeListener: () => undefined },
    };
    // Electron's sandboxed preload wrapper: (require, process, Buffer, global, setImmediate, clearImmediate, exports, module).
    const sandboxRequire = (name: string): unknown => {
      required.push(name);
      if (name === 'electron') return electron;
      throw new Error(`module not found: ${name}`);
    };
    const source = readFileSync(join(built.root, 'dist', 'main', 'preload.cjs'), 'utf8');
    const wrapped = vm.runInNewContext(`(function (require, process, Buffer, global, setImmediate, clearImmediate, exports, module) {\n${source}\n})`, {});
    const module = { exports: {} };
    (wrapped as (...a: unknown[]) => void)(sandboxRequire, { contextIsolated: true, sandboxed: true }, undefined, {}, undefined, undefined, module.exports, module);
    assert.deepEqual(required, ['electron']);
    assert.deepEqual([...exposed.keys()], ['ctll']);
    assert.deepEqual(Object.keys(exposed.get('ctll')!).sort(), [...DESKTOP_API_METHODS].sort());
  });
});
