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
import { createLogger, logLevelFromEnv, type Level } from '../log.js';
import { Settings } from '../settings.js';
import { readFirewallStatus } from './firewall-status.js';
import { FirewallKeeper } from './firewall-keeper.js';

export const DEFAULT_STATUS_FILE = '/run/ctll-firewall/status.json';
export const DEFAULT_INTERVAL_MS = 10_000;

function fail(message: string): never {
  process.stderr.write(`isolation-firewall: ${message}\n`);
  process.exit(2);
}

// This program's configuration, read once here with the server's settings reader (settings.ts):
// the only place of the firewall CLI that reads process.env.
const read = new Settings(process.env);
const statusFile = read.word('CTLL_FIREWALL_STATUS_FILE', { default: DEFAULT_STATUS_FILE, valid: /^\//, expected: 'an absolute path like /run/ctll-firewall/status.json' });

if (process.argv.includes('--healthcheck')) {
  if (read.problems.length) fail(read.problems.join('; '));
  const status = readFirewallStatus(statusFile);
  if (!status.ok) process.stderr.write(`isolation-firewall: ${status.error}\n`);
  process.exit(status.ok ? 0 : 1);
}

const intervalMs = read.int('CTLL_FIREWALL_INTERVAL_MS', { default: DEFAULT_INTERVAL_MS, min: 100, max: 3_600_000 });
const level: Level = read.checked(() => logLevelFromEnv(process.env), 'info');
if (read.problems.length) fail(read.problems.join('; '));
const keeper = new FirewallKeeper({ statusFile, intervalMs, log: createLogger({}, level) });
keeper.start();
onShutdownSignal(() => keeper.stop());
