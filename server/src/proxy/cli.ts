/**
 * Runs one streaming proxy: the entry point of the per-user proxy container, and a way to run
 * the proxy alone. Configured by flags or environment (containers use the environment).
 *
 *   PROXY_OWNER=alice PROXY_TOKEN=... tsx server/src/proxy/cli.ts --port 8080
 */
import { parseArgs } from 'node:util';
import { onShutdownSignal } from '@cloudtolocalllm/bridge/shutdown-signals';
import { createLogger, logLevelFromEnv } from '../log.js';
import { StaticTokenAuthenticator } from './auth.js';
import { StreamingProxy } from './streaming-proxy.js';

function fail(message: string): never {
  process.stderr.write(`streaming proxy: ${message}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env['PROXY_PORT'] ?? '8080' },
    host: { type: 'string', default: process.env['PROXY_HOST'] ?? '127.0.0.1' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write(
    'usage: proxy [--port N] [--host ADDR]\n' +
      'environment: PROXY_OWNER (user id), PROXY_TOKEN (bearer token, >= 16 chars), PROXY_RESPONSE_HEAD_TIMEOUT_MS, LOG_LEVEL\n',
  );
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port "${values.port}" is not a port number (0-65535)`);
const owner = process.env['PROXY_OWNER'];
const token = process.env['PROXY_TOKEN'];
if (!owner) fail('PROXY_OWNER (the id of the user this proxy belongs to) is not set');
if (!token) fail('PROXY_TOKEN (the bearer token its bridge and clients present) is not set');

const headTimeout = process.env['PROXY_RESPONSE_HEAD_TIMEOUT_MS'];
const responseHeadTimeoutMs = headTimeout ? Number(headTimeout) : undefined;
if (responseHeadTimeoutMs !== undefined && (!Number.isSafeInteger(responseHeadTimeoutMs) || responseHeadTimeoutMs < 100)) {
  fail(`PROXY_RESPONSE_HEAD_TIMEOUT_MS "${headTimeout}" must be a whole number of milliseconds, at least 100`);
}
let level;
try {
  level = logLevelFromEnv();
} catch (e) {
  fail((e as Error).message);
}
const log = createLogger({ component: 'streaming-proxy' }, level);
let authenticator: StaticTokenAuthenticator;
try {
  authenticator = new StaticTokenAuthenticator(owner, token);
} catch (e) {
  fail((e as Error).message);
}
// No default process metrics: their event-loop monitor wakes every 10 ms, and with hundreds of idle
// proxies on a host that alone costs a core (docs/benchmarks-proxies.md). Docker measures containers.
const proxy = new StreamingProxy({ authenticator, log, processMetrics: false, ...(responseHeadTimeoutMs !== undefined ? { responseHeadTimeoutMs } : {}) });
const url = await proxy.listen(port, values.host).catch((e: Error) => fail(`cannot listen on ${values.host}:${port}: ${e.message}`));
log.info('streaming proxy listening', { url });

onShutdownSignal((signal) => {
  log.info('stopping', { signal });
  return proxy.close();
});
