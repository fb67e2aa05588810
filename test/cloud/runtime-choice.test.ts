/** Which proxy runtime the server picks when the Docker engine is not there. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig } from '@cloudtolocalllm/server/config';
import { createLogger } from '@cloudtolocalllm/server/log';

// dockerode reads DOCKER_HOST: point it at a socket that does not exist.
process.env['DOCKER_HOST'] = 'unix:///nonexistent/docker.sock';

test('auto: without a Docker engine the server runs proxies in-process and warns that isolation is weaker', async () => {
  const lines: string[] = [];
  const log = createLogger({}, 'info', (l) => lines.push(l));
  const server = await startCloudServer(loadConfig({}, ['--port', '0', '--runtime', 'auto']), { log, audit: { record: () => {} } });
  try {
    assert.equal(server.runtime.kind, 'process');
    const warning = lines.map((l) => JSON.parse(l) as { level: string; msg: string; reason?: string }).find((l) => l.level === 'warn');
    assert.equal(
      warning?.msg,
      'no Docker engine answers; proxies run inside this process. Isolation between users is WEAKER (shared process and memory). ' +
        'Fix that and start again, or pass --runtime docker to refuse to run without Docker isolation.',
    );
    assert.match(warning.reason ?? '', /^the Docker engine is not reachable: .*\/nonexistent\/docker\.sock/);
    const health = (await (await fetch(`${server.url}/health`)).json()) as { runtime: string };
    assert.equal(health.runtime, 'process');
  } finally {
    await server.close();
  }
});

test('--runtime docker without a Docker engine fails at start with the reason', async () => {
  await assert.rejects(
    startCloudServer(loadConfig({}, ['--port', '0', '--runtime', 'docker']), { log: createLogger({}, 'error', () => {}), audit: { record: () => {} } }),
    /--runtime docker was asked for, but the Docker engine does not answer/,
  );
});
