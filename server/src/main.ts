/**
 * The cloud server's entry point.
 *
 *   tsx server/src/main.ts [--port N] [--host ADDR] [--runtime docker|process|auto] [--keep-proxies]
 *
 * Configuration: see server/src/config.ts and docs (AUTH0_DOMAIN, AUTH0_AUDIENCE, ...).
 */
import { onShutdownSignal } from '@cloudtolocalllm/bridge/shutdown-signals';
import { ConfigError, loadConfig } from './config.js';
import { startCloudServer } from './cloud-server.js';
import { createLogger } from './log.js';

let config;
try {
  config = loadConfig();
} catch (e) {
  process.stderr.write(`cloud server: ${e instanceof ConfigError ? e.message : String(e)}\n`);
  process.exit(2);
}
const log = createLogger({ component: 'cloud-server' }, config.logLevel);
const server = await startCloudServer(config, { log }).catch((e: Error) => {
  process.stderr.write(`cloud server: ${e.message}\n`);
  process.exit(1);
});

onShutdownSignal((signal) => {
  log.info('stopping', { signal });
  return server.close();
});
