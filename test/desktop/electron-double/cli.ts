/**
 * The Electron double's `electron` executable: runs an app's BUILT main script under Node with
 * `electron` resolving to the double, as Electron would run it.
 *
 *   node --import tsx test/desktop/electron-double/cli.ts APP_DIR [args...]          like `electron APP_DIR`
 *   node --import tsx test/desktop/electron-double/cli.ts --packaged RESOURCES [args...]
 *        like the packaged executable: the app in RESOURCES/app, app.isPackaged, process.resourcesPath
 *
 * Environment: CTLL_DOUBLE_CONTROL (the test's control socket), CTLL_DOUBLE_BROWSER (a Playwright
 * browser server for the windows), CTLL_DOUBLE_PLATFORM (linux, win32 or darwin: which platform's
 * branch the app takes), CTLL_DOUBLE_OS_DIR (where the "OS" keeps login items).
 */
import { readFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LaunchInfo } from './app.js';

const LAUNCH_KEY = Symbol.for('ctll.electron-double.launch');
const DOUBLE_KEY = Symbol.for('ctll.electron-double.module');

const [first, ...rest] = process.argv.slice(2);
if (!first) {
  process.stderr.write('usage: cli.ts APP_DIR [args...] | cli.ts --packaged RESOURCES [args...]\n');
  process.exit(2);
}
let launch: LaunchInfo;
let argv: string[];
if (first === '--packaged') {
  const resourcesPath = resolve(rest.shift() ?? '.');
  launch = { appPath: join(resourcesPath, 'app'), isPackaged: true, resourcesPath };
  argv = [process.execPath, ...rest];
  (process as { resourcesPath?: string }).resourcesPath = resourcesPath;
} else {
  launch = { appPath: resolve(first), isPackaged: false };
  argv = [process.execPath, launch.appPath, ...rest];
  // Electron sets this when it runs an app folder given on its command line.
  (process as { defaultApp?: boolean }).defaultApp = true;
}

const platform = process.env['CTLL_DOUBLE_PLATFORM'];
if (platform) {
  if (!['linux', 'win32', 'darwin'].includes(platform)) throw new Error(`CTLL_DOUBLE_PLATFORM must be linux, win32 or darwin, not ${platform}`);
  Object.defineProperty(process, 'platform', { value: platform });
}
const electronVersion = (JSON.parse(readFileSync(new URL('../../../node_modules/electron/package.json', import.meta.url), 'utf8')) as { version: string }).version;
Object.defineProperty(process.versions, 'electron', { value: electronVersion, enumerable: true });
(process as { type?: string }).type = 'browser';

// Output to a parent that has gone must not become an error that reports itself forever.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);
// Like Electron's main process: an unhandled rejection or exception is reported, the app keeps running.
const { control } = await import('./control.js');
process.on('unhandledRejection', (reason) => {
  const message = reason instanceof Error ? (reason.stack ?? reason.message) : String(reason);
  process.stderr.write(`(electron-double) unhandled rejection: ${message}\n`);
  control.event('unhandled-rejection', { message });
});
process.on('uncaughtException', (error) => {
  process.stderr.write(`(electron-double) uncaught exception: ${error.stack ?? error.message}\n`);
  control.event('uncaught-exception', { message: error.stack ?? error.message });
});

(globalThis as Record<symbol, unknown>)[LAUNCH_KEY] = launch;
const doubleUrl = new URL('./electron.ts', import.meta.url).href;
// eslint-disable-next-line no-unsanitized/method -- the double's own module, next to this file
const electron = (await import(doubleUrl)) as typeof import('./electron.js');
(globalThis as Record<symbol, unknown>)[DOUBLE_KEY] = electron;

// ESM imports of 'electron' (the app's bundle) and CommonJS requires (electron-log) both get it.
register('./hooks.mjs', import.meta.url, { data: { doubleUrl } });
const moduleInternals = Module as unknown as { _load: (request: string, parent: unknown, isMain: boolean) => unknown };
const load = moduleInternals._load;
moduleInternals._load = function (request, parent, isMain) {
  return request === 'electron' ? electron : load.call(this, request, parent, isMain);
};

process.argv = argv;
const pkg = JSON.parse(readFileSync(join(launch.appPath, 'package.json'), 'utf8')) as { main?: string };
// eslint-disable-next-line no-unsanitized/method -- the app under test, as `electron APP_DIR` runs its main script
await import(pathToFileURL(resolve(launch.appPath, pkg.main ?? 'index.js')).href);
electron.app.markReady();
