/**
 * Stopping the stack removes every network it created, whatever happened to the proxies (issue
 * 13, finding 7: after a user's proxy was killed and replaced, a clean stop left that user's
 * network behind). Skipped without a Docker engine, except in CI (CI=true), where that is a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { DockerRuntime } from '@cloudtolocalllm/server/runtime/docker/docker-runtime';
import { dockerEngineSkip } from './docker-engine.js';
import { networkCreateOptions } from '@cloudtolocalllm/proxy-spec/container-spec';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { waitForState, waitUntil } from '../tunnel/harness.js';
import { startCloud } from './cloud-harness.js';

const run = promisify(execFile);
const skip = await dockerEngineSkip();
const docker = async (...args: string[]): Promise<string> => (await run('docker', args)).stdout.trim();

test('a proxy killed and replaced under a connected bridge: a clean stop leaves no container and no network', { skip }, async () => {
  // A stack of its own, so nothing of another test or helper on this engine is counted or touched.
  const stack = `hc${randomBytes(3).toString('hex')}`;
  const cloud = await startCloud({ runtime: 'docker', env: { CTLL_STACK_NAME: stack } });
  const emulator = new OllamaEmulator();
  await emulator.start();
  const id = `cleanup-${stack}`;
  const owner = userHash(id);
  try {
    const token = await cloud.signIn(id);
    const bridge = cloud.bridge(token, emulator.url);
    bridge.start();
    await waitForState(bridge, 'connected', 30_000);
    const created = cloud.server.manager.record(owner)!.createdAt;
    await docker('kill', cloud.server.manager.record(owner)!.instance!.id);
    // The bridge notices, reconnects, and its upgrade starts a new proxy for it.
    await waitUntil(() => {
      const r = cloud.server.manager.record(owner);
      return r?.state === 'running' && r.createdAt > created && r.bridges > 0;
    }, 'the bridge is back on a new proxy', 60_000);
    await bridge.stop();
    // Killed again; the stack stops as soon as the server has noticed, while it is cleaning up.
    await docker('kill', cloud.server.manager.record(owner)!.instance!.id);
    await waitUntil(() => cloud.server.manager.record(owner) === undefined, 'the server noticed the death', 30_000);
    // And a network whose removal failed earlier (the engine still detaching an endpoint, say),
    // made here exactly as the runtime makes one.
    const runtime = cloud.server.runtime as DockerRuntime;
    const leftover = userHash(`${id}-leftover`);
    await runtime.subnets.withSubnet((subnet) => runtime.docker.createNetwork(networkCreateOptions(leftover, subnet, stack)));
  } finally {
    await cloud.close();
    await emulator.close();
  }
  const containers = await docker('ps', '-aq', '--filter', `label=cloudtolocalllm.stack=${stack}`);
  const networks = await docker('network', 'ls', '-q', '--filter', `label=cloudtolocalllm.stack=${stack}`);
  // This test's own stack only: whatever a failure left is removed, then reported.
  if (containers) await docker('rm', '-f', ...containers.split('\n'));
  if (networks) await docker('network', 'rm', ...networks.split('\n'));
  assert.equal(containers, '', 'no container of the stack is left');
  assert.equal(networks, '', 'no network of the stack is left');
});
