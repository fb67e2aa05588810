import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readHeadlessConfig } from './headless-config.js';

test('start:headless takes --name for this computer, and refuses a bad one saying why', () => {
  assert.equal(readHeadlessConfig(['--name', 'home-server'], {}).name, 'home-server');
  assert.match(readHeadlessConfig([], {}).name, /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/);
  assert.throws(() => readHeadlessConfig(['--name', 'home server'], {}), /^Error: --name: the computer name "home server" may hold only letters, digits/);
  assert.throws(() => readHeadlessConfig(['--name', 'x'.repeat(64)], {}), /at most 63 are allowed/);
});

test('start:headless keeps no spare proxies (one user on this machine) unless told', () => {
  assert.equal(readHeadlessConfig([], {}).server.proxySpares, 0);
  assert.equal(readHeadlessConfig([], { CTLL_PROXY_SPARES: '3' }).server.proxySpares, 3);
});
