/**
 * The build's output, without a browser: the window bundles carry no Node, and the preload
 * bundle, run as a sandboxed preload runs (CommonJS, `electron` the only require), exposes
 * exactly the DesktopApi and hands the page nothing but plain values.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import vm from 'node:vm';
import { IpcChannel } from '../../main/ipc-contract.js';
import { DEFAULT_SETTINGS } from '../../main/settings/settings.js';
import { buildIntoTemp, DESKTOP_API_METHODS, sampleStatus } from './renderer-harness.js';

type Listener = (...args: unknown[]) => void;

describe('renderer build', () => {
  let built: Awaited<ReturnType<typeof buildIntoTemp>>;
  before(async () => {
    built = await buildIntoTemp();
  });
  after(() => built?.cleanup());

  test('writes one script per window next to its page and the style sheet', async () => {
    for (const name of ['settings.html', 'settings.js', 'about.html', 'about.js', 'styles.css']) {
      assert.ok(built.files.includes(name), `${name} is built`);
    }
    for (const page of ['settings', 'about']) {
      const html = await readFile(join(built.outDir, `${page}.html`), 'utf8');
      assert.match(html, new RegExp(`<script src="${page}.js" defer></script>`));
      assert.doesNotMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=/i, `${page}.html has no inline script or style`);
      const js = await readFile(join(built.outDir, `${page}.js`), 'utf8');
      assert.doesNotMatch(js, /\brequire\(|["']node:/, `${page}.js needs nothing from Node`);
    }
  });

  describe('preload bundle', () => {
    const invokes: unknown[][] = [];
    const listeners = new Map<string, Set<Listener>>();
    const requires: string[] = [];
    const exposed = new Map<string, Record<string, unknown>>();
    const ipcRenderer = {
      invoke: async (channel: string, ...args: unknown[]) => {
        invokes.push([channel, ...args]);
        return { answerTo: channel };
      },
      on(channel: string, listener: Listener) {
        if (!listeners.has(channel)) listeners.set(channel, new Set());
        listeners.get(channel)!.add(listener);
        return ipcRenderer;
      },
      removeListener(channel: string, listener: Listener) {
        listeners.get(channel)?.delete(listener);
        return ipcRenderer;
      },
    };
    const emit = (channel: string, ...args: unknown[]): void => {
      for (const l of listeners.get(channel) ?? []) l({ sender: ipcRenderer, ports: [] }, ...args);
    };
    let api: Record<string, (...args: unknown[]) => unknown>;

    before(async () => {
      const code = await readFile(built.preloadFile, 'utf8');
      const module = { exports: {} };
      const electron = { contextBridge: { exposeInMainWorld: (key: string, value: Record<string, unknown>) => exposed.set(key, value) }, ipcRenderer };
      vm.runInNewContext(code, {
        module,
        exports: module.exports,
        require: (name: string) => {
          requires.push(name);
          if (name === 'electron') return electron;
          throw new Error(`a sandboxed preload cannot require ${name}`);
        },
      });
      api = exposed.get('ctll') as typeof api;
    });

    test('requires only electron and exposes only window.ctll', () => {
      assert.deepEqual(requires, ['electron']);
      assert.deepEqual([...exposed.keys()], ['ctll']);
    });

    test('ctll has exactly the DesktopApi methods, all functions', () => {
      assert.deepEqual(Object.keys(api).sort(), [...DESKTOP_API_METHODS].sort());
      for (const [name, value] of Object.entries(api)) assert.equal(typeof value, 'function', name);
      assert.ok(!Object.values(api).includes(ipcRenderer as never));
    });

    test('each method invokes its contract channel with its arguments, and no others', async () => {
      invokes.length = 0;
      const settings = structuredClone(DEFAULT_SETTINGS);
      assert.deepEqual(await api['getSettings']!('extra'), { answerTo: IpcChannel.GetSettings });
      assert.deepEqual(await api['saveSettings']!(settings), { answerTo: IpcChannel.SaveSettings });
      assert.deepEqual(await api['testOllama']!('http://127.0.0.1:11434'), { answerTo: IpcChannel.TestOllama });
      assert.deepEqual(await api['getStatus']!(), { answerTo: IpcChannel.GetStatus });
      assert.deepEqual(await api['signIn']!(), { answerTo: IpcChannel.SignIn });
      assert.deepEqual(await api['getAbout']!(), { answerTo: IpcChannel.GetAbout });
      // Methods that answer nothing pass nothing back either.
      assert.equal(await api['signOut']!(), undefined);
      assert.equal(await api['openExternal']!('https://example.com'), undefined);
      assert.equal(await api['openLogs']!(), undefined);
      assert.deepEqual(invokes, [
        [IpcChannel.GetSettings],
        [IpcChannel.SaveSettings, settings],
        [IpcChannel.TestOllama, 'http://127.0.0.1:11434'],
        [IpcChannel.GetStatus],
        [IpcChannel.SignIn],
        [IpcChannel.GetAbout],
        [IpcChannel.SignOut],
        [IpcChannel.OpenExternal, 'https://example.com'],
        [IpcChannel.OpenLogs],
      ]);
    });

    test('onStatus passes the status alone, never the IPC event, and unsubscribes', () => {
      const received: unknown[][] = [];
      const unsubscribe = api['onStatus']!((...args: unknown[]) => received.push(args)) as () => void;
      assert.equal(typeof unsubscribe, 'function');
      assert.equal(listeners.get(IpcChannel.StatusChanged)?.size, 1);
      const status = sampleStatus({ statusLine: 'Connected to cloud.example.com' });
      emit(IpcChannel.StatusChanged, status);
      assert.deepEqual(received, [[status]]);
      unsubscribe();
      assert.equal(listeners.get(IpcChannel.StatusChanged)?.size, 0);
      emit(IpcChannel.StatusChanged, status);
      assert.equal(received.length, 1);
    });
  });
});
