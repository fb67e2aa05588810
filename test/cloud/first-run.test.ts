/**
 * The README's first commands on a fresh machine that has Docker but has never built the proxy
 * image: `npm run start:headless` builds the image itself with scripts/build-proxy-image.sh (the
 * one builder), says so, and serves through a proxy container; a stale image is rebuilt, one the
 * builder did not make is left alone; where the build cannot work, it falls back to in-process
 * with a warning that says why and how to get Docker isolation, and `--runtime docker` stops at
 * once with the reason instead of retrying forever.
 *
 * Every image here has a tag of this file's own (never the one other tests use), removed at the
 * end. Skipped without a Docker engine, except in CI (CI=true), where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startCloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig } from '@cloudtolocalllm/server/config';
import { createLogger } from '@cloudtolocalllm/server/log';
import { DockerRuntime } from '@cloudtolocalllm/server/runtime/docker/docker-runtime';
import { dockerEngineSkip } from './docker-engine.js';
import { ensureProxyImage, INPUTS_LABEL, inspectImage } from '@cloudtolocalllm/server/runtime/docker/proxy-image';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { bearer } from './cloud-harness.js';
import { startHeadless } from './headless-process.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TAG = 'cloudtolocalllm/streaming-proxy:firstrun-test';
const UNBUILDABLE = 'cloudtolocalllm/streaming-proxy:firstrun-test-unbuildable';
const FOREIGN = 'cloudtolocalllm/streaming-proxy:firstrun-test-foreign';
const OURS = [TAG, UNBUILDABLE, FOREIGN];

const skip = await dockerEngineSkip();

/** What the builder can never do: copy a node binary that is not there. */
const NO_NODE = { NODE_BIN: '/nonexistent/bin/node' };
/** The isolation firewall needs root; elsewhere these tests are about the image, not the firewall. */
const FIREWALL = { CTLL_FIREWALL: process.getuid?.() === 0 ? 'enforce' : 'warn' };

interface LogLine {
  level: string;
  msg: string;
  reason?: string;
}
const logLines = (stderr: string): LogLine[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

async function removeImage(tag: string): Promise<void> {
  await run('docker', ['image', 'rm', '--force', tag]).catch(() => undefined);
}

describe('first run on an engine without the proxy image', { skip, concurrency: false, timeout: 600_000 }, () => {
  // The engine client the server uses (dockerode is the server package's, reached through it).
  let engine: DockerRuntime;
  let docker: DockerRuntime['docker'];
  let emulator: OllamaEmulator;
  before(async () => {
    engine = new DockerRuntime({ firewall: 'off' });
    docker = engine.docker;
    for (const tag of OURS) await removeImage(tag);
    emulator = new OllamaEmulator({ tokenIntervalMs: 5 });
    await emulator.start();
  });
  after(async () => {
    await emulator?.close();
    for (const tag of OURS) await removeImage(tag);
    await engine?.close();
  });

  test('start:headless builds the missing image itself, says so, serves through a proxy container, and Ctrl-C leaves nothing behind', async (t) => {
    assert.equal((await inspectImage(docker, TAG)).kind, 'missing');
    const user = `firstrun-${process.pid}`;
    const started = performance.now();
    const headless = await startHeadless(['--ollama-url', emulator.url, '--user', user], 300_000, { CTLL_PROXY_IMAGE: TAG, ...FIREWALL });
    try {
      t.diagnostic(`time to the first endpoint with the image build: ${Math.round(performance.now() - started)} ms`);
      const lines = logLines(headless.stderr());
      const building = lines.find((l) => l.msg.startsWith(`the proxy image ${TAG} does not exist yet: building it`));
      assert.ok(building, `a progress line before the build:\n${headless.stderr().slice(-2000)}`);
      assert.ok(lines.some((l) => l.msg.startsWith(`build-proxy-image: built ${TAG} `)), 'the builder said it built it');
      assert.ok(lines.some((l) => l.msg === 'proxy image ready'));
      const image = await inspectImage(docker, TAG);
      assert.equal(image.kind, 'built');

      const health = (await (await fetch(new URL('/health', headless.endpoint))).json()) as { runtime: string };
      assert.equal(health.runtime, 'docker');
      const res = await fetch(`${headless.endpoint}/api/version`, { headers: bearer(headless.token) });
      assert.equal(res.status, 200);
      const container = await docker.getContainer(`ctll-proxy-${userHash(user)}`).inspect();
      assert.equal(container.Config.Image, TAG, 'the proxy runs the image that was just built');
    } finally {
      headless.child.kill('SIGINT');
      const [code] = (await once(headless.child, 'exit')) as [number | null];
      assert.equal(code, 0, headless.stderr().slice(-2000));
    }
    const left = [
      ...(await docker.listContainers({ all: true, filters: { name: [`ctll-proxy-${userHash(user)}`] } })).map((c) => c.Names[0]),
      ...(await docker.listNetworks({ filters: { name: [`ctll-net-${userHash(user)}`] } })).map((n) => n.Name),
    ];
    assert.deepEqual(left, [], 'no container or network of the user is left');
  });

  test('the server rebuilds an image older than its inputs, and leaves one the builder did not make alone', async () => {
    const current = await inspectImage(docker, TAG);
    assert.equal(current.kind, 'built', 'the previous test built it');
    // The same image with another inputs hash: what an image built before a `git pull` looks like.
    const stale = spawn('docker', ['build', '-q', '-t', TAG, '-'], { env: { ...process.env, DOCKER_BUILDKIT: '0' }, stdio: ['pipe', 'ignore', 'inherit'] });
    stale.stdin.end(`FROM ${TAG}\nLABEL ${INPUTS_LABEL}=0000stale\n`);
    assert.deepEqual(await once(stale, 'exit'), [0, null]);
    assert.deepEqual(await inspectImage(docker, TAG), { kind: 'built', inputs: '0000stale', base: 'scratch' });

    const lines: LogLine[] = [];
    const log = createLogger({}, 'info', (l) => lines.push(JSON.parse(l) as LogLine));
    const server = await startCloudServer(loadConfig({ CTLL_PROXY_IMAGE: TAG, ...FIREWALL }, ['--port', '0', '--runtime', 'docker']), { log, audit: { record: () => {} } });
    try {
      assert.equal(server.runtime.kind, 'docker');
      assert.ok(lines.some((l) => l.msg.startsWith(`build-proxy-image: building ${TAG} `)), lines.map((l) => l.msg).join('\n'));
      assert.deepEqual(await inspectImage(docker, TAG), current, 'rebuilt with the inputs hash of today');
    } finally {
      await server.close();
    }

    // No inputs label: pulled or built some other way. Used as it is, never rebuilt over.
    const foreign = spawn('docker', ['build', '-q', '-t', FOREIGN, '-'], { env: { ...process.env, DOCKER_BUILDKIT: '0' }, stdio: ['pipe', 'ignore', 'inherit'] });
    foreign.stdin.end(`FROM ${TAG}\nLABEL ${INPUTS_LABEL}=\n`);
    assert.deepEqual(await once(foreign, 'exit'), [0, null]);
    const before = (await docker.getImage(FOREIGN).inspect()).Id;
    const said: LogLine[] = [];
    const ready = await ensureProxyImage({ docker, image: FOREIGN, log: createLogger({}, 'debug', (l) => said.push(JSON.parse(l) as LogLine)) });
    assert.deepEqual(ready, { ok: true, built: false });
    assert.equal((await docker.getImage(FOREIGN).inspect()).Id, before);
    assert.deepEqual(said.map((l) => l.msg), ['the proxy image was not made by scripts/build-proxy-image.sh: using it as it is']);
  });

  test('where the image cannot be built, start:headless runs proxies in-process and says why and how to get Docker isolation', async () => {
    const headless = await startHeadless(['--ollama-url', emulator.url], 120_000, { CTLL_PROXY_IMAGE: UNBUILDABLE, ...NO_NODE, ...FIREWALL });
    try {
      const health = (await (await fetch(new URL('/health', headless.endpoint))).json()) as { runtime: string };
      assert.equal(health.runtime, 'process');
      const res = await fetch(`${headless.endpoint}/api/version`, { headers: bearer(headless.token) });
      assert.equal(res.status, 200, 'the product still works');
      const warning = logLines(headless.stderr()).find((l) => l.level === 'warn' && l.msg.includes('proxies run inside this process'));
      assert.ok(warning, headless.stderr().slice(-2000));
      assert.equal(
        warning.msg,
        `the Docker engine answers, but the proxy image ${UNBUILDABLE} cannot be made ready; proxies run inside this process. ` +
          'Isolation between users is WEAKER (shared process and memory). Fix that and start again, or pass --runtime docker to refuse to run without Docker isolation.',
      );
      assert.match(warning.reason ?? '', /^scripts\/build-proxy-image\.sh could not build \S+: node binary not found at '\/nonexistent\/bin\/node' \(set NODE_BIN to the node to copy into the image\)\. Fix that and run scripts\/build-proxy-image\.sh, or start again$/);
    } finally {
      assert.equal(await headless.stop(), 0);
    }
    assert.equal((await inspectImage(docker, UNBUILDABLE)).kind, 'missing');
  });

  test('with --runtime docker and an image that cannot be built, start:headless stops at once with the reason', async () => {
    const failed = await run(process.execPath, ['--import', 'tsx', 'scripts/start-headless.ts', '--runtime', 'docker', '--ollama-url', emulator.url], {
      cwd: ROOT,
      env: { ...process.env, CTLL_PROXY_IMAGE: UNBUILDABLE, ...NO_NODE, ...FIREWALL },
      timeout: 120_000,
    }).then(
      () => assert.fail('start:headless started'),
      (e: { code?: number; stderr?: string; stdout?: string }) => e,
    );
    assert.equal(failed.code, 1, failed.stderr);
    assert.equal(failed.stdout, '', 'no endpoint was printed');
    assert.match(
      failed.stderr ?? '',
      /^start:headless: --runtime docker was asked for, but the proxy image \S+ cannot be made ready: scripts\/build-proxy-image\.sh could not build \S+: node binary not found at '\/nonexistent\/bin\/node' \(set NODE_BIN to the node to copy into the image\)\. Fix that/m,
    );
  });
});
