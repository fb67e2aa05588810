/**
 * The BUILT desktop app from source with no cloud server, on a real Docker engine: the local
 * stack gives the signed-in user a proxy in a container of its own; sign-in goes through
 * Chromium; a client in the cloud reaches this computer's Ollama through that container; Quit
 * leaves no container, network, port or process behind. Its objects carry a stack name of this
 * run (CTLL_STACK_NAME), so nothing else on the engine is touched.
 *
 * Skipped without a Docker engine or Chromium, except in CI (CI=true), where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { DockerRuntime } from '@cloudtolocalllm/server/runtime/docker/docker-runtime';
import { chromiumUnavailable } from '../browser.js';
import { localStackUrls, portClosed, PRODUCT_LINE, ROOT, runId, signInFromTray, startSession, type AppRun, type Session } from './app-harness.js';

const run = promisify(execFile);
const probe = await DockerRuntime.probe();
const unavailable = !probe.ok ? `no Docker engine here (${probe.error})` : chromiumUnavailable();
if (unavailable && process.env['CI'] === 'true') {
  test('a Docker engine and Chromium are here (CI machines must have them)', () => assert.fail(String(unavailable)));
}

const STACK = `desktop-${runId()}`;
const docker = async (...args: string[]): Promise<string> => (await run('docker', args, { maxBuffer: 16 << 20 })).stdout.trim();
const ours = async (kind: 'ps' | 'network'): Promise<string[]> =>
  (await docker(...(kind === 'ps' ? ['ps', '-a'] : ['network', 'ls']), '--filter', `label=cloudtolocalllm.stack=${STACK}`, '--format', kind === 'ps' ? '{{.Names}}' : '{{.Name}}'))
    .split('\n')
    .filter(Boolean);

describe('the built desktop app from source on Docker (local stack, Docker runtime)', { skip: unavailable ? `${unavailable}; CI=true makes this a failure` : false, concurrency: false }, () => {
  let session: Session;
  let app: AppRun;
  let stack: { api: string; issuer: string } | undefined;

  before(async () => {
    const [started] = await Promise.all([startSession(), run('bash', [`${ROOT}/scripts/build-proxy-image.sh`], { cwd: ROOT, maxBuffer: 16 << 20 })]);
    session = started;
    app = session.launch({ settings: { ollamaUrl: session.emulator.url }, env: { CTLL_RUNTIME: 'docker', CTLL_STACK_NAME: STACK } });
  });
  after(async () => {
    await session?.close();
    // Only this run's objects: they carry its stack label.
    for (const name of await ours('ps').catch(() => [])) await docker('rm', '-f', name).catch(() => '');
    for (const name of await ours('network').catch(() => [])) await docker('network', 'rm', name).catch(() => '');
  });

  test('sign-in reaches Connected, with the proxy in a container of its own', async () => {
    await app.waitForLog(/cloud server listening/, 'the local stack listening');
    stack = localStackUrls(app.logText());
    assert.ok(stack);
    assert.match(app.logText(), /"runtime":"docker"/, 'the local stack runs its proxies on Docker');
    await signInFromTray(app, session.browser, 'grace', (tip) => tip === `${PRODUCT_LINE}\nConnected: connected to this computer`);
    const containers = await ours('ps');
    assert.equal(containers.length, 1, `one proxy container: ${containers.join(', ')}`);
    assert.match(containers[0]!, new RegExp(`^ctll-${STACK}-proxy-[0-9a-f]{64}$`));
    assert.equal((await ours('network')).length, 1, 'and its own network');

    const config = (await (await fetch(`${stack.api}/api/config`)).json()) as { issuer: string; audience: string; desktopClientId: string };
    const token = (await headlessSignIn({ issuer: config.issuer, clientId: config.desktopClientId, audience: config.audience, username: 'grace' })).accessToken;
    const version = await fetch(`${stack.api}/ollama/api/version`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(version.status, 200, 'through the container and the bridge to Ollama');
    assert.ok(session.emulator.requests.some((r) => r.path === '/api/version'));
  });

  test('Quit removes the proxy container and its network before the app ends; no port, no process', async () => {
    assert.ok(stack);
    const exit = await app.quit();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.deepEqual(await ours('ps'), [], 'no proxy container is left');
    assert.deepEqual(await ours('network'), [], 'no proxy network is left');
    assert.equal(await portClosed(stack.api), true);
    assert.equal(await portClosed(stack.issuer), true);
    assert.deepEqual(await app.leftoverProcesses(), []);
    assert.deepEqual(app.problems(), []);
  });
});
