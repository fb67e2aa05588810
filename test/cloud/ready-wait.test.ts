/**
 * A start on the Docker runtime waits for what it needs (CTLL_READY_WAIT_SECONDS), as the Swarm
 * stack's api-backend must: nothing orders a node's services there, so its Docker API filter and
 * the isolation firewall's keeper may come up after it. The engine is the real one, reached
 * through a socket that appears only later (the filter starting), and the firewall's status
 * file is written later still (the keeper confirming its rules).
 * Skipped without a Docker engine, except in CI (CI=true), where that is a failure.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig } from '@cloudtolocalllm/server/config';
import { createLogger } from '@cloudtolocalllm/server/log';
import { dockerEngineSkip } from './docker-engine.js';

const skip = await dockerEngineSkip();
const ENGINE = (process.env['DOCKER_HOST'] ?? 'unix:///var/run/docker.sock').replace(/^unix:\/\//, '');

interface Line {
  level: string;
  msg: string;
  reason?: string;
}

describe('a start on Docker waits for the engine and the firewall (CTLL_READY_WAIT_SECONDS)', { skip, concurrency: false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctll-ready-wait-'));
  const before = process.env['DOCKER_HOST'];
  after(() => {
    if (before === undefined) delete process.env['DOCKER_HOST'];
    else process.env['DOCKER_HOST'] = before;
    rmSync(dir, { recursive: true, force: true });
  });

  test('both come up after the server: it waits for each, says what for, then runs proxies on Docker', async () => {
    const socket = join(dir, 'docker.sock');
    const status = join(dir, 'status.json');
    process.env['DOCKER_HOST'] = `unix://${socket}`;
    const lines: Line[] = [];
    const log = createLogger({}, 'info', (l) => lines.push(JSON.parse(l) as Line));
    const config = loadConfig({ CTLL_READY_WAIT_SECONDS: '60', CTLL_FIREWALL_STATUS_FILE: status, CTLL_STACK_NAME: 'ctll-ready-wait' }, ['--port', '0', '--runtime', 'docker']);
    let settled = false;
    const starting = startCloudServer(config, { log, audit: { record: () => {} } }).finally(() => (settled = true));
    // Until it starts, the filter stands in as a relay to the engine on a socket not there yet.
    const relay = net.createServer((client) => {
      const engine = net.connect(ENGINE);
      client.pipe(engine).pipe(client);
      engine.on('error', () => client.destroy());
      client.on('error', () => engine.destroy());
    });
    try {
      await sleep(1_500);
      assert.equal(settled, false, 'the start waits while the engine does not answer');
      const engineWait = lines.find((l) => l.msg === 'waiting for the Docker engine');
      assert.match(engineWait?.reason ?? '', new RegExp(`not reachable: .*${socket.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`), 'the wait says what it waits for and why');
      await new Promise<void>((resolve) => relay.listen(socket, resolve));
      for (let i = 0; i < 600 && !lines.some((l) => l.msg === 'waiting for the isolation firewall'); i++) await sleep(100);
      const firewallWait = lines.find((l) => l.msg === 'waiting for the isolation firewall');
      assert.match(firewallWait?.reason ?? '', /has not written .*status\.json yet/, 'with the engine up, the firewall is waited for');
      assert.equal(settled, false, 'the start waits while the firewall is not confirmed');
      writeFileSync(status, JSON.stringify({ ok: true, checkedAt: Date.now(), validUntil: Date.now() + 60_000 }));
      const server = await starting;
      assert.equal(server.runtime.kind, 'docker');
      assert.ok(!lines.some((l) => l.level === 'warn' && /proxies run inside this process/.test(l.msg)), 'no fallback to in-process proxies');
    } finally {
      // A start still waiting gives up at its deadline; either way nothing is left running.
      await starting.then((s) => s.close(), () => undefined);
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });

  test('nothing comes: it gives up when the wait is over, with the reason', async () => {
    process.env['DOCKER_HOST'] = `unix://${join(dir, 'never.sock')}`;
    const startedAt = Date.now();
    await assert.rejects(
      startCloudServer(loadConfig({ CTLL_READY_WAIT_SECONDS: '2' }, ['--port', '0', '--runtime', 'docker']), { log: createLogger({}, 'error', () => {}), audit: { record: () => {} } }),
      /--runtime docker was asked for, but the Docker engine does not answer: the Docker engine is not reachable: .*never\.sock/,
    );
    const waited = Date.now() - startedAt;
    assert.ok(waited >= 2_000, `gave up after ${waited} ms, before the 2 s it was given`);
  });
});
