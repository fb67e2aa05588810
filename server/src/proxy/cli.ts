/**
 * Runs one streaming proxy: the entry point of the per-user proxy container, and a way to run
 * the proxy alone. Configured by flags or environment (containers use the environment):
 * proxy-config.ts.
 *
 *   PROXY_OWNER=alice PROXY_TOKEN=... tsx server/src/proxy/cli.ts --port 8080
 */
import { onShutdownSignal } from '@cloudtolocalllm/bridge/shutdown-signals';
import { createLogger } from '../log.js';
import { StaticTokenAuthenticator } from './auth.js';
import { loadProxyConfig, PROXY_USAGE, type ProxyConfig } from './proxy-config.js';
import { StreamingProxy } from './streaming-proxy.js';

function fail(message: string): never {
  process.stderr.write(`streaming proxy: ${message}\n`);
  process.exit(2);
}

let config: ProxyConfig;
try {
  config = loadProxyConfig();
} catch (e) {
  fail((e as Error).message);
}
if (config.help) {
  process.stdout.write(PROXY_USAGE);
  process.exit(0);
}
const log = createLogger({ component: 'streaming-proxy' }, config.logLevel);
let authenticator: StaticTokenAuthenticator;
try {
  authenticator = new StaticTokenAuthenticator(config.owner, config.token);
} catch (e) {
  fail((e as Error).message);
}
// No default process metrics: their event-loop monitor wakes every 10 ms, and with hundreds of idle
// proxies on a host that alone costs a core (docs/benchmarks-proxies.md). Docker measures containers.
const proxy = new StreamingProxy({ authenticator, log, processMetrics: false, responseHeadTimeoutMs: config.responseHeadTimeoutMs,
  ...(config.maxConcurrentRequests !== undefined ? { maxConcurrentRequests: config.maxConcurrentRequests } : {}),
});
const url = await proxy.listen(config.port, config.host).catch((e: Error) => fail(`cannot listen on ${config.host}:${config.port}: ${e.message}`));
log.info('streaming proxy listening', { url });

onShutdownSignal((signal) => {
  log.info('stopping', { signal });
  return proxy.close();
});
