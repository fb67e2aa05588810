/**
 * Client keys against the cloud server on the Docker runtime (issue 9): the server is killed with
 * SIGKILL and started again; the keys work again once the bridge has reconnected, and nothing of a
 * key (the key, its secret, its verifier) is on the server's disk (the proxy container's
 * filesystem, files the server wrote) or in its logs (the server's, the container's).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Bridge } from '@cloudtolocalllm/bridge';
import { parseClientKey } from '@cloudtolocalllm/bridge/connection/client-key';
import { KeyRing } from '@cloudtolocalllm/bridge/keys/key-ring';
import { KeyStore } from '@cloudtolocalllm/bridge/keys/key-store';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { DEFAULT_AUDIENCE } from '@cloudtolocalllm/server/config';
import { dockerEngineSkip } from '../cloud/docker-engine.js';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { spawnServer } from '../cloud/server-process.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const skip = await dockerEngineSkip();

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** Every file under `dir` changed since `since` (ms), skipping what is not the server's. */
function changedFiles(dir: string, since: number, skipDirs: ReadonlySet<string>, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (skipDirs.has(path) || name === 'node_modules' || name === '.git') continue;
    let st;
    try {
      st = statSync(path);
    } catch {
      continue;
    }
    if (st.isDirectory()) changedFiles(path, since, skipDirs, out);
    else if (st.isFile() && st.mtimeMs >= since && st.size < 64 << 20) out.push(path);
  }
  return out;
}

describe('client keys across a cloud server killed and restarted (Docker runtime)', { skip }, () => {
  let emulator: OllamaEmulator;
  let dir: string;
  before(async () => {
    emulator = new OllamaEmulator({ tokenIntervalMs: 5 });
    await emulator.start();
    dir = mkdtempSync(join(tmpdir(), 'ctll-keys-restart-'));
  });
  after(async () => {
    await emulator.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('keys work again after the bridge reconnects; nothing of a key is on the server\'s disk or in its logs', async () => {
    const started = Date.now();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const username = `keys-restart-${process.pid}`;
    let server = await spawnServer(port, { LOG_LEVEL: 'debug' });
    const servers = [server];
    let issuer = server.issuer;
    // The bridge signs in against whichever issuer the running server has (a restarted one has new keys).
    const token = async (): Promise<{ accessToken: string; subject?: string }> => headlessSignIn({ issuer, clientId: 'cloudtolocalllm-desktop', audience: DEFAULT_AUDIENCE, username });
    const first = await token();
    const store = new KeyStore(dir);
    store.recordSignIn(userHash(first.subject!), `${url}/ollama`);
    const ring = new KeyRing(store);
    ring.start();
    const bridge = new Bridge({ proxyUrl: `ws://127.0.0.1:${port}/ws/bridge`, getToken: async () => (await token()).accessToken, ollamaUrl: emulator.url, keys: ring, backoff: { initialMs: 250, maxMs: 1_000, factor: 2, minMs: 250 } });
    const connections: number[] = [];
    let onConnected: (() => void) | undefined;
    bridge.on('status', (s) => {
      if (s.state !== 'connected') return;
      connections.push(Date.now());
      onConnected?.();
    });
    const nextConnection = (): Promise<void> => new Promise((resolve) => (onConnected = resolve));
    try {
      const connected = nextConnection();
      bridge.start();
      await connected;
      const { key, definition } = store.create({ name: 'survives' });
      const tags = async (): Promise<number> => (await fetch(`${url}/ollama/api/tags`, { headers: { authorization: `Bearer ${key}` } })).status;
      assert.equal(await tags(), 200);
      const container = (await run('docker', ['ps', '-q', '--filter', `name=^ctll-proxy-${userHash(first.subject!)}$`])).stdout.trim();
      assert.ok(container, 'the user has a proxy container');

      const reconnected = nextConnection();
      server.child.kill('SIGKILL');
      await new Promise((r) => server.child.once('exit', r));
      server = await spawnServer(port, { LOG_LEVEL: 'debug' });
      servers.push(server);
      issuer = server.issuer;
      await reconnected;
      assert.equal(await tags(), 200, 'the key works again after the bridge reconnected');

      // Nothing of the key anywhere on the cloud side.
      const parsed = parseClientKey(key);
      assert.ok(parsed.ok);
      const needles = [key, key.slice(5, 40), definition.verifier, parsed.secret.toString('hex'), parsed.secret.toString('base64url'), parsed.secret.toString('base64')];
      const containers = (await run('docker', ['ps', '-q', '--filter', `name=^ctll-proxy-${userHash(first.subject!)}$`])).stdout.trim().split('\n').filter(Boolean);
      assert.ok(containers.length > 0);
      const places: Array<[string, Buffer]> = [];
      for (const c of containers) {
        const diff = (await run('docker', ['diff', c])).stdout;
        places.push([`docker diff ${c}`, Buffer.from(diff)]);
        const logs = await run('docker', ['logs', c], { maxBuffer: 64 << 20 });
        places.push([`docker logs ${c}`, Buffer.from(logs.stdout + logs.stderr)]);
        const exported = await run('docker', ['export', c], { encoding: 'buffer', maxBuffer: 1 << 30 });
        places.push([`the filesystem of ${c}`, exported.stdout as unknown as Buffer]);
      }
      for (const s of servers) places.push(['the server\'s log', Buffer.from(s.log())]);
      for (const file of changedFiles(ROOT, started, new Set([dir]))) places.push([file, readFileSync(file)]);
      for (const [where, bytes] of places) {
        for (const needle of needles) assert.equal(bytes.indexOf(needle), -1, `${where} holds part of a key`);
      }
      process.stdout.write(`# searched ${places.length} places for the key, its secret and its verifier; the bridge reconnected ${connections.length - 1} time(s)\n`);
    } finally {
      await bridge.stop();
      ring.close();
      const last = servers[servers.length - 1]!;
      last.child.kill('SIGTERM');
      await new Promise((r) => (last.child.exitCode !== null ? r(undefined) : last.child.once('exit', r)));
    }
  });
});
