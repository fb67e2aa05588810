/**
 * Idle keep-alive connections: the servers keep them longer than the clients in front of them,
 * so no client sends a request on a connection the server is closing (nginx answered such a POST
 * with 502; Node's default of 5 s made it likely). Checked on the api-backend and a streaming
 * proxy with a connection left idle past Node's default, and against the nginx configuration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig } from '@cloudtolocalllm/server/config';
import { IDLE_CONNECTION_MS } from '@cloudtolocalllm/server/http-lifecycle';
import { silentLogger } from '@cloudtolocalllm/server/log';
import { MemoryAuditLog } from '@cloudtolocalllm/server/audit';
import { StaticTokenAuthenticator } from '@cloudtolocalllm/server/proxy/auth';
import { StreamingProxy } from '@cloudtolocalllm/server/proxy/streaming-proxy';

/** Node's own default keep-alive, past which an idle connection used to be closed. */
const NODE_DEFAULT_MS = 5_000;

/** Two GETs on one keep-alive connection, `idleMs` apart: whether the second reused the first's socket, and what it said. */
async function getTwice(url: string, idleMs: number, headers: Record<string, string> = {}): Promise<{ reused: boolean; status: number; keepAlive: string | undefined }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (): Promise<{ reused: boolean; status: number; keepAlive: string | undefined }> =>
    new Promise((resolve, reject) => {
      const req = http.get(url, { agent, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve({ reused: req.reusedSocket, status: res.statusCode ?? 0, keepAlive: typeof res.headers['keep-alive'] === 'string' ? res.headers['keep-alive'] : undefined }));
      });
      req.on('error', reject);
    });
  try {
    await get();
    await sleep(idleMs);
    return await get();
  } finally {
    agent.destroy();
  }
}

test(`the api-backend and a streaming proxy keep an idle connection past Node's ${NODE_DEFAULT_MS / 1000} s, and say for how long`, async () => {
  const cloud = await startCloudServer(loadConfig({}, ['--port', '0', '--runtime', 'process']), { audit: new MemoryAuditLog(), log: silentLogger });
  const token = randomBytes(24).toString('base64url');
  const proxy = new StreamingProxy({ authenticator: new StaticTokenAuthenticator('keep-alive-user', token) });
  const proxyUrl = await proxy.listen();
  try {
    const [api, tunnel] = await Promise.all([
      getTwice(`${cloud.url}/health`, NODE_DEFAULT_MS + 1_000),
      getTwice(`${proxyUrl}/api/version`, NODE_DEFAULT_MS + 1_000, { authorization: `Bearer ${token}` }),
    ]);
    for (const [name, r] of [['api-backend', api], ['streaming proxy', tunnel]] as const) {
      assert.equal(r.reused, true, `${name}: the second request went out on the idle connection`);
      assert.ok(r.status > 0, `${name}: and was answered`);
      assert.equal(r.keepAlive, `timeout=${IDLE_CONNECTION_MS / 1000}`, `${name}: the hint Node's agents follow`);
    }
  } finally {
    await proxy.close();
    await cloud.close();
  }
});

test("nginx lets go of an idle upstream connection before the api-backend does", () => {
  const conf = readFileSync(new URL('../../server/deploy/nginx/conf.d/cloudtolocalllm.conf', import.meta.url), 'utf8');
  // The block holds a template placeholder ({{UPSTREAM}}), so it is read up to its own setting.
  const timeout = /upstream ctll_api \{[^]*?keepalive_timeout (\d+)s;[^]*?\n\}/.exec(conf)?.[1];
  assert.ok(timeout !== undefined, 'the upstream block sets keepalive_timeout');
  assert.ok(Number(timeout) * 1000 < IDLE_CONNECTION_MS, `nginx keeps ${timeout} s, the api-backend ${IDLE_CONNECTION_MS / 1000} s`);
});
