/**
 * The streaming proxy program's configuration (server/src/proxy/cli.ts, the entry point of each
 * per-user proxy container): environment variables, which the Docker runtime sets
 * (@cloudtolocalllm/proxy-spec/container-spec), overridden by flags for runs by hand. Read once
 * at start with the server's settings reader (settings.ts): every problem reported at once,
 * each with its variable's name. The only module of the proxy that reads process.env.
 */
import { parseArgs } from 'node:util';
import { logLevelFromEnv, type Level } from '../log.js';
import { Settings, type Flags } from '../settings.js';
import { DEFAULT_RESPONSE_HEAD_TIMEOUT_MS } from './relay.js';

export interface ProxyConfig {
  port: number;
  host: string;
  /** The user this proxy belongs to (containers: the user hash; never the raw id there). */
  owner: string;
  /** The bearer token its bridge and the api-backend present. */
  token: string;
  responseHeadTimeoutMs: number;
  /** Ollama requests in flight at once; unlimited when unset (a proxy run by hand). */
  maxConcurrentRequests?: number;
  logLevel: Level;
  help: boolean;
}

export const PROXY_USAGE =
  'usage: proxy [--port N] [--host ADDR]\n' +
  'environment: PROXY_OWNER (user id), PROXY_TOKEN (bearer token, >= 16 chars), PROXY_PORT, PROXY_HOST, PROXY_RESPONSE_HEAD_TIMEOUT_MS, PROXY_MAX_CONCURRENT_REQUESTS, LOG_LEVEL\n';

export class ProxyConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'ProxyConfigError';
  }
}

export function loadProxyConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = process.argv.slice(2)): ProxyConfig {
  let flags: Flags = {};
  const problems: string[] = [];
  try {
    flags = parseArgs({ args: argv, options: { port: { type: 'string' }, host: { type: 'string' }, help: { type: 'boolean' } }, strict: true }).values;
  } catch (e) {
    problems.push((e as Error).message);
  }
  const read = new Settings(env, flags);
  const owner = read.raw('PROXY_OWNER');
  const token = read.raw('PROXY_TOKEN');
  const help = flags['help'] === true;
  if (!help && !owner) read.problem('PROXY_OWNER (the id of the user this proxy belongs to) is not set');
  if (!help && !token) read.problem('PROXY_TOKEN (the bearer token its bridge and clients present) is not set');
  const maxConcurrentRequests = read.int('PROXY_MAX_CONCURRENT_REQUESTS', { min: 1, max: 100_000 });
  const config: ProxyConfig = {
    port: read.int('PROXY_PORT', { flag: 'port', default: 8080, min: 0, max: 65535 }),
    host: read.word('PROXY_HOST', { flag: 'host', default: '127.0.0.1' }),
    owner: owner ?? '',
    token: token ?? '',
    responseHeadTimeoutMs: read.int('PROXY_RESPONSE_HEAD_TIMEOUT_MS', { default: DEFAULT_RESPONSE_HEAD_TIMEOUT_MS, min: 100, max: 86_400_000 }),
    ...(maxConcurrentRequests !== undefined ? { maxConcurrentRequests } : {}),
    logLevel: read.checked(() => logLevelFromEnv(env), 'info'),
    help,
  };
  problems.push(...read.problems);
  if (problems.length && !help) throw new ProxyConfigError(problems);
  return config;
}
