/**
 * The local stack for the desktop app: with no cloud server configured, the app runs the cloud
 * server itself on 127.0.0.1 (embedded sign-in issuer; Docker proxies when an engine answers,
 * else in-process; CTLL_RUNTIME=docker|process chooses), so it works on one machine with no
 * account anywhere. Loaded only on demand, and not shipped in packaged builds
 * (electron-builder.yml leaves it and server code out).
 *
 * This file runs as the bundle dist/main/local-stack.js (scripts/build-desktop.ts), next to the
 * web client the build puts in dist/web.
 */
import { fileURLToPath } from 'node:url';
import { startCloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig, singleUserEnv } from '@cloudtolocalllm/server/config';
import { createLogger } from '@cloudtolocalllm/server/log';
import type { LocalStack } from './app-controller.js';

export async function startLocalStack(log: (line: string) => void): Promise<LocalStack> {
  const env = singleUserEnv(process.env);
  const server = await startCloudServer(loadConfig(env, ['--port', '0', '--host', '127.0.0.1']), {
    log: createLogger({ component: 'local-stack' }, 'info', log),
    accessTokenTtlSec: 3600,
    webRoot: env['CTLL_WEB_ROOT']?.trim() || fileURLToPath(new URL('../web', import.meta.url)),
  });
  return { url: server.url, close: () => server.close() };
}
