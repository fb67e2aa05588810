/**
 * The cloud server's configuration: environment variables (deployments) overridden by flags
 * (local runs), read once at start, validated with messages that name the variable.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_LIMITS, type LimitOptions } from './api/limits.js';
import { assertStackName } from './runtime/docker/naming.js';
import { jwtOptionsFromEnv, type JwtVerifierOptions } from './auth/jwt-verifier.js';

export interface ServerConfig {
  port: number;
  host: string;
  runtime: 'docker' | 'process' | 'auto';
  /** Auth0 (or any OpenID issuer) when AUTH0_DOMAIN is set; the embedded issuer otherwise. */
  auth: { kind: 'auth0'; issuer: string; audience: string; jwksUri?: string } | { kind: 'embedded'; audience: string; issuerPort: number };
  proxyImage: string;
  subnetRange: string;
  /** The server deployment's name on a shared Docker engine: it sees only its own proxies. */
  stack?: string;
  healthIntervalMs: number;
  /** The Docker engine's own HEALTHCHECK interval in each proxy container; 0 = off. */
  engineHealthIntervalMs: number;
  idleTimeoutMs: number;
  sweepIntervalMs: number;
  corsOrigins: string[];
  metricsToken?: string;
  limits: LimitOptions;
  /** Leave proxies running on shutdown, for a rolling restart that adopts them. */
  keepProxiesOnExit: boolean;
  /** The Auth0 application (native) the desktop app signs in with; published at /api/config. */
  desktopClientId: string;
  /** The Auth0 application (single-page) the web client signs in with. */
  webClientId?: string;
  /** The URL browsers use to reach this server (behind nginx: https://cloud.example.com). */
  publicUrl?: string;
  /** Folder with the built web client served at /, /app/ and /docs/. */
  webRoot?: string;
  /** Hardening limits and deadlines (docs/cloud-server.md, configuration). */
  guard: GuardConfig;
}

export interface GuardConfig {
  /** How long a relayed request waits for the answer's head from the user's computer. */
  responseHeadTimeoutMs: number;
  /** Failed authentications per client address and window before 429. */
  authFailureLimit: number;
  authFailureWindowMs: number;
  /** The peer is a reverse proxy that sets X-Real-IP (nginx in the deployed stack). */
  trustProxy: boolean;
  /** /metrics answers only with METRICS_TOKEN, and not at all without one. */
  metricsRequireToken: boolean;
  /** Proxies this server runs at most, all users together. */
  maxProxies: number;
  /** Proxy starts per user per minute. */
  proxyStartsPerMinute: number;
}

export const DEFAULT_AUDIENCE = 'https://api.cloudtolocalllm.local';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = process.argv.slice(2)): ServerConfig {
  const problems: string[] = [];
  let flags: Record<string, string | boolean | undefined> = {};
  try {
    flags = parseArgs({
      args: argv,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        runtime: { type: 'string' },
        'keep-proxies': { type: 'boolean' },
      },
      strict: true,
    }).values;
  } catch (e) {
    problems.push((e as Error).message);
  }
  const str = (flag: string, name: string, fallback: string): string => {
    const f = flags[flag];
    return typeof f === 'string' ? f : (env[name] ?? fallback);
  };
  const int = (name: string, raw: string, min: number, max: number): number => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${name}="${raw}" must be a whole number from ${min} to ${max}`);
      return min;
    }
    return n;
  };

  const port = int('PORT (--port)', str('port', 'PORT', '8080'), 0, 65535);
  const host = str('host', 'HOST', '127.0.0.1');
  const runtime = str('runtime', 'CTLL_RUNTIME', 'auto');
  if (runtime !== 'docker' && runtime !== 'process' && runtime !== 'auto') {
    problems.push(`CTLL_RUNTIME (--runtime) is "${runtime}"; use docker, process or auto`);
  }

  let auth: ServerConfig['auth'];
  let jwt: JwtVerifierOptions | undefined;
  try {
    jwt = jwtOptionsFromEnv(env);
  } catch (e) {
    problems.push((e as Error).message);
  }
  if (jwt) {
    auth = { kind: 'auth0', issuer: jwt.issuer, audience: jwt.audience, ...(jwt.jwksUri ? { jwksUri: jwt.jwksUri } : {}) };
  } else {
    auth = {
      kind: 'embedded',
      audience: env['CTLL_API_AUDIENCE']?.trim() || DEFAULT_AUDIENCE,
      issuerPort: int('CTLL_ISSUER_PORT', env['CTLL_ISSUER_PORT'] ?? '0', 0, 65535),
    };
  }

  const subnetRange = env['CTLL_SUBNET_RANGE'] ?? '10.200.0.0/16';
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(subnetRange)) problems.push(`CTLL_SUBNET_RANGE "${subnetRange}" must be an IPv4 CIDR like 10.200.0.0/16`);

  const stack = env['CTLL_STACK_NAME']?.trim() || undefined;
  try {
    assertStackName(stack);
  } catch (e) {
    problems.push((e as Error).message);
  }

  const corsOrigins = (env['CORS_ORIGINS'] ?? '*')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const o of corsOrigins) {
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) problems.push(`CORS_ORIGINS entry "${o}" must be * or an origin like https://app.example.com`);
  }

  const config: ServerConfig = {
    port,
    host,
    runtime: runtime as ServerConfig['runtime'],
    auth,
    proxyImage: env['CTLL_PROXY_IMAGE'] ?? 'cloudtolocalllm/streaming-proxy:local',
    subnetRange,
    ...(stack ? { stack } : {}),
    engineHealthIntervalMs: int('CTLL_ENGINE_HEALTH_INTERVAL_MS', env['CTLL_ENGINE_HEALTH_INTERVAL_MS'] ?? '0', 0, 3_600_000),
    healthIntervalMs: int('CTLL_HEALTH_INTERVAL_MS', env['CTLL_HEALTH_INTERVAL_MS'] ?? '30000', 100, 3_600_000),
    idleTimeoutMs: int('CTLL_IDLE_TIMEOUT_MS', env['CTLL_IDLE_TIMEOUT_MS'] ?? '600000', 100, 86_400_000),
    sweepIntervalMs: int('CTLL_SWEEP_INTERVAL_MS', env['CTLL_SWEEP_INTERVAL_MS'] ?? '60000', 100, 3_600_000),
    corsOrigins,
    ...(env['METRICS_TOKEN'] ? { metricsToken: env['METRICS_TOKEN'] } : {}),
    limits: {
      requestsPerSecond: int('CTLL_RATE_PER_SECOND', env['CTLL_RATE_PER_SECOND'] ?? String(DEFAULT_LIMITS.requestsPerSecond), 1, 100_000),
      burst: int('CTLL_RATE_BURST', env['CTLL_RATE_BURST'] ?? String(DEFAULT_LIMITS.burst), 1, 1_000_000),
      maxConcurrentRequests: int('CTLL_MAX_CONCURRENT_REQUESTS', env['CTLL_MAX_CONCURRENT_REQUESTS'] ?? String(DEFAULT_LIMITS.maxConcurrentRequests), 1, 100_000),
      maxBridgeConnections: int('CTLL_MAX_BRIDGES', env['CTLL_MAX_BRIDGES'] ?? String(DEFAULT_LIMITS.maxBridgeConnections), 1, 1_000),
      bodyBytesPerSecond: int('CTLL_BODY_BYTES_PER_SECOND', env['CTLL_BODY_BYTES_PER_SECOND'] ?? String(DEFAULT_LIMITS.bodyBytesPerSecond), 1024, 1e12),
      bodyBurstBytes: int('CTLL_BODY_BURST_BYTES', env['CTLL_BODY_BURST_BYTES'] ?? String(DEFAULT_LIMITS.bodyBurstBytes), 65_536, 1e12),
      bodyStallMs: int('CTLL_BODY_STALL_MS', env['CTLL_BODY_STALL_MS'] ?? String(DEFAULT_LIMITS.bodyStallMs), 100, 3_600_000),
    },
    guard: {
      responseHeadTimeoutMs: int('CTLL_RESPONSE_HEAD_TIMEOUT_MS', env['CTLL_RESPONSE_HEAD_TIMEOUT_MS'] ?? '600000', 100, 86_400_000),
      authFailureLimit: int('CTLL_AUTH_FAILURE_LIMIT', env['CTLL_AUTH_FAILURE_LIMIT'] ?? '30', 1, 1_000_000),
      authFailureWindowMs: int('CTLL_AUTH_FAILURE_WINDOW_MS', env['CTLL_AUTH_FAILURE_WINDOW_MS'] ?? '60000', 1000, 86_400_000),
      trustProxy: int('CTLL_TRUST_PROXY', env['CTLL_TRUST_PROXY'] ?? '0', 0, 1) === 1,
      metricsRequireToken: int('CTLL_METRICS_REQUIRE_TOKEN', env['CTLL_METRICS_REQUIRE_TOKEN'] ?? '0', 0, 1) === 1,
      maxProxies: int('CTLL_MAX_PROXIES', env['CTLL_MAX_PROXIES'] ?? '500', 0, 1_000_000),
      proxyStartsPerMinute: int('CTLL_PROXY_STARTS_PER_MINUTE', env['CTLL_PROXY_STARTS_PER_MINUTE'] ?? '10', 1, 10_000),
    },
    keepProxiesOnExit: flags['keep-proxies'] === true || env['CTLL_KEEP_PROXIES_ON_EXIT'] === '1',
    desktopClientId: env['AUTH0_DESKTOP_CLIENT_ID']?.trim() || 'cloudtolocalllm-desktop',
    ...(env['CTLL_PUBLIC_URL']?.trim() ? { publicUrl: env['CTLL_PUBLIC_URL'].trim() } : {}),
    webRoot: env['CTLL_WEB_ROOT']?.trim() || fileURLToPath(new URL('../dist/web', import.meta.url)),
    ...(env['AUTH0_WEB_CLIENT_ID']?.trim() ? { webClientId: env['AUTH0_WEB_CLIENT_ID'].trim() } : {}),
  };
  const publicUrl = env['CTLL_PUBLIC_URL']?.trim();
  if (publicUrl && !/^https?:\/\/[^/\s]+\/?$/.test(publicUrl)) problems.push(`CTLL_PUBLIC_URL "${publicUrl}" must be an origin like https://cloud.example.com`);
  if (env['AUTH0_DOMAIN']?.trim() && !env['AUTH0_DESKTOP_CLIENT_ID']?.trim()) {
    problems.push('AUTH0_DESKTOP_CLIENT_ID (the client id of the Auth0 native application the desktop app signs in with) must be set when AUTH0_DOMAIN is');
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}
