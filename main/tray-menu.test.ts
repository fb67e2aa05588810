import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MenuItemConstructorOptions } from 'electron';
import { statusView, type StatusParts } from './status-view.js';
import { PRODUCT_LINE, trayMenuTemplate, trayTooltip, type TrayActions } from './tray-menu.js';

const keychain = { available: true, detail: 'GNOME Keyring' };
const base: StatusParts = { auth: { state: 'signed-out' }, proxy: { state: 'idle' }, keychain, cloudHost: 'cloud.example.com' };

function recorder(): { actions: TrayActions; calls: string[] } {
  const calls: string[] = [];
  const actions = new Proxy({} as TrayActions, { get: (_t, name: string) => () => calls.push(name) });
  return { actions, calls };
}
const ids = (items: MenuItemConstructorOptions[]): string[] => items.filter((i) => i.type !== 'separator').map((i) => i.id ?? '?');

test('every state gives its tray state and a status line a person understands', () => {
  const cases: Array<[Partial<StatusParts>, string, RegExp]> = [
    [{}, 'signed-out', /sign in to connect/],
    [{ auth: { state: 'signed-out', error: 'access denied' } }, 'error', /sign-in failed: access denied/],
    [{ setupError: 'the cloud server on this computer could not start: port in use' }, 'error', /^the cloud server on this computer could not start: port in use$/],
    [{ auth: { state: 'signing-in' } }, 'connecting', /finish in your browser/],
    [{ auth: { state: 'signed-in', name: 'alice' }, proxy: { state: 'provisioning' } }, 'connecting', /starting your proxy on cloud.example.com/],
    [{ auth: { state: 'signed-in' }, proxy: { state: 'error', detail: 'your proxy could not be started: no free subnet' } }, 'error', /no free subnet/],
    [{ auth: { state: 'signed-in' }, proxy: { state: 'running' }, bridge: { state: 'connecting', since: 0, attempt: 0 } }, 'connecting', /connecting to cloud.example.com/],
    [{ auth: { state: 'signed-in' }, proxy: { state: 'running' }, bridge: { state: 'connected', since: 0, attempt: 0 } }, 'connected', /^connected to cloud.example.com$/],
    [{ auth: { state: 'signed-in' }, proxy: { state: 'running' }, bridge: { state: 'connected', since: 0, attempt: 0 }, ollama: { reachable: false } }, 'connected', /Ollama is not reachable/],
    [{ auth: { state: 'signed-in' }, proxy: { state: 'running' }, bridge: { state: 'error', reason: 'update required: ...', since: 0, attempt: 3 } }, 'error', /update required/],
    [{ auth: { state: 'signed-in' }, proxy: { state: 'running' }, bridge: { state: 'disconnected', reason: 'the proxy stopped answering', retryInMs: 4200, since: 0, attempt: 1 } }, 'connecting', /stopped answering \(retrying in 5 s\)/],
  ];
  for (const [parts, tray, line] of cases) {
    const v = statusView({ ...base, ...parts });
    assert.equal(v.trayState, tray, JSON.stringify(parts));
    assert.match(v.statusLine, line, JSON.stringify(parts));
  }
});

test('the tooltip is the product line, then the state', () => {
  const v = statusView({ ...base, auth: { state: 'signed-in' }, proxy: { state: 'running' }, bridge: { state: 'connected', since: 0, attempt: 0 } });
  assert.equal(trayTooltip(v), `${PRODUCT_LINE}\nConnected: connected to cloud.example.com`);
  assert.equal(PRODUCT_LINE, 'CloudToLocalLLM - Multi-Tenant Streaming');
});

test('signed out: status, Show, Settings, About, Sign in, Open logs, Quit', () => {
  const { actions } = recorder();
  const items = trayMenuTemplate(statusView(base), false, actions);
  assert.deepEqual(ids(items), ['status', 'toggle', 'settings', 'about', 'sign-in', 'logs', 'quit']);
  assert.equal(items[0]?.enabled, false, 'the status line is not clickable');
  assert.equal(items.find((i) => i.id === 'toggle')?.label, 'Show');
});

test('signed in with the window open: Hide and Sign out (name)', () => {
  const { actions, calls } = recorder();
  const v = statusView({ ...base, auth: { state: 'signed-in', name: 'alice' }, proxy: { state: 'running' } });
  const items = trayMenuTemplate(v, true, actions);
  assert.deepEqual(ids(items), ['status', 'toggle', 'settings', 'about', 'sign-out', 'logs', 'quit']);
  assert.equal(items.find((i) => i.id === 'toggle')?.label, 'Hide');
  assert.equal(items.find((i) => i.id === 'sign-out')?.label, 'Sign out (alice)');
  for (const item of items) (item.click as (() => void) | undefined)?.();
  assert.deepEqual(calls, ['toggleWindow', 'openSettings', 'openAbout', 'signOut', 'openLogs']);
  const quit = items.find((i) => i.id === 'quit');
  assert.deepEqual([quit?.role, quit?.click], ['quit', undefined], 'Quit is the quit role, which Electron runs itself');
});

test('the status view carries counters and connection details for the Settings window', () => {
  const v = statusView({
    ...base,
    auth: { state: 'signed-in' },
    proxy: { state: 'running' },
    bridge: { state: 'connected', since: 1, attempt: 0, connectedSince: 1234 },
    counters: { requests: 5, refused: 1, failed: 0, aborted: 0, bytesIn: 10, bytesOut: 2000, activeStreams: 2 },
  });
  assert.deepEqual(v.counters, { requests: 5, bytesIn: 10, bytesOut: 2000, activeStreams: 2 });
  assert.equal(v.bridge.connectedSince, 1234);
  assert.equal(v.keychain.detail, 'GNOME Keyring');
});
