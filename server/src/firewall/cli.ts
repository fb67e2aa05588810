/**
 * The `isolation-firewall` service of the compose stack: installs and keeps the isolation
 * firewall (firewall-keeper.ts) and publishes its state for the api-backend. Needs root with
 * CAP_NET_ADMIN and CAP_NET_RAW in the host's network namespace; nothing else.
 *
 *   node isolation-firewall.mjs                keep the rules (configuration from the environment)
 *   node isolation-firewall.mjs --healthcheck  exit 0 while the status file confirms the rules
 *
 * Environment: CTLL_FIREWALL_STATUS_FILE (default /run/ctll-firewall/status.json),
 * CTLL_FIREWALL_INTERVAL_MS (default 10000), LOG_LEVEL.
 */
import { onShutdownSignal } from '@cloudtolocalllm/bridge/shutdown-signals';
import { createLogger, logLevelFromEnv } from '../log.js';
import { readFirewallStatus } from './firewall-status.js';
import { FirewallKeeper } from './firewall-keeper.js';

export const DEFAULT_STATUS_FILE = '/run/ctll-firewall/status.json';
export const DEFAULT_INTERVAL_MS = 10_000;

function fail(message: string): never {
  process.stderr.write(`isolation-firewall: ${message}\n`);
  process.exit(2);
}

const statusFile = process.env['CTLL_FIREWALL_STATUS_FILE']?.trim() || DEFAULT_STATUS_FILE;

if (process.argv.includes('--healthcheck')) {
  const status = readFirewallStatus(statusFile);
  if (!status.ok) process.stderr.write(`isolation-firewall: ${status.error}\n`);
  process.exit(status.ok ? 0 : 1);
}

const rawInterval = process.env['CTLL_FIREWALL_INTERVAL_MS']?.trim();
const intervalMs = rawInterval ? Number(rawInterval) : DEFAULT_INTERVAL_MS;
if (!Number.isSafeInteger(intervalMs) || intervalMs < 100) fail(`CTLL_FIREWALL_INTERVAL_MS "${rawInterval}" must be a whole number of milliseconds, at least 100`);
let level;
try {
  level = logLevelFromEnv();
} catch (e) {
  fail((e as Error).message);
}
const keeper = new FirewallKeeper({ statusFile, intervalMs, log: createLogger({}, level) });
keeper.start();
onShutdownSignal(() => keeper.stop());
