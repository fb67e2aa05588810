/**
 * The Docker API filter program's configuration: environment variables, read once at start;
 * every problem reported at once, each with its variable's name. The only module of the filter
 * that reads process.env. The filter depends on the proxy spec alone (tools/lint/
 * dependency-rules.cjs), so it has this small reader of its own instead of the server's
 * settings.ts; its defaults (image, subnet range) are the spec's, the ones the runtime uses.
 */
import { DEFAULT_PROXY_IMAGE, DEFAULT_SUBNET_RANGE } from '@cloudtolocalllm/proxy-spec/container-spec';
import { assertStackName } from '@cloudtolocalllm/proxy-spec/naming';
import type { FilterPolicy } from './docker-api-filter.js';

/** Ceilings a proxy container's limits must stay within (the runtime's defaults are far below). */
export const DEFAULT_POLICY_LIMITS = { maxMemoryBytes: 2 * 1024 ** 3, maxNanoCpus: 4e9, maxPids: 4096 } as const;
export const FILTER_LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type FilterLogLevel = (typeof FILTER_LOG_LEVELS)[number];
export const DEFAULT_LISTEN = '/run/ctll-docker/docker.sock';
export const DEFAULT_UPSTREAM = '/var/run/docker.sock';

export interface FilterConfig {
  policy: FilterPolicy;
  listen: string;
  upstream: string;
  logLevel: FilterLogLevel;
}

/**
 * One call per setting, named; a problem is recorded with the variable's name instead of thrown,
 * so every mistake is reported at once. Blank counts as unset, as for the server (Compose passes
 * unset variables as empty strings).
 */
class FilterSettings {
  readonly problems: string[] = [];

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  raw(name: string): string | undefined {
    const raw = this.env[name]?.trim();
    return raw ? raw : undefined;
  }

  /** A positive number (bytes, nano-CPUs, pids). */
  number(name: string, fallback: number): number {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (Number.isFinite(n) && n > 0) return n;
    this.problems.push(`${name}="${raw}" must be a positive number`);
    return fallback;
  }
}

export function policyFromEnv(env: NodeJS.ProcessEnv): FilterPolicy {
  const read = new FilterSettings(env);
  const policy = readPolicy(read);
  if (read.problems.length) throw new Error(read.problems.join('; '));
  return policy;
}

function readPolicy(read: FilterSettings): FilterPolicy {
  const stack = read.raw('CTLL_STACK_NAME');
  try {
    assertStackName(stack);
  } catch (e) {
    read.problems.push((e as Error).message);
  }
  return {
    image: read.raw('CTLL_PROXY_IMAGE') ?? DEFAULT_PROXY_IMAGE,
    subnetRange: read.raw('CTLL_SUBNET_RANGE') ?? DEFAULT_SUBNET_RANGE,
    ...(stack ? { stack } : {}),
    maxMemoryBytes: read.number('CTLL_FILTER_MAX_MEMORY_BYTES', DEFAULT_POLICY_LIMITS.maxMemoryBytes),
    maxNanoCpus: read.number('CTLL_FILTER_MAX_NANO_CPUS', DEFAULT_POLICY_LIMITS.maxNanoCpus),
    maxPids: read.number('CTLL_FILTER_MAX_PIDS', DEFAULT_POLICY_LIMITS.maxPids),
  };
}

export function loadFilterConfig(env: NodeJS.ProcessEnv = process.env): FilterConfig {
  const read = new FilterSettings(env);
  const policy = readPolicy(read);
  const level = read.raw('LOG_LEVEL');
  const logLevel = FILTER_LOG_LEVELS.find((l) => l === (level ?? 'info').toLowerCase());
  if (!logLevel) read.problems.push(`LOG_LEVEL="${level}" must be one of ${FILTER_LOG_LEVELS.join(', ')}`);
  if (read.problems.length) throw new Error(read.problems.join('; '));
  return {
    policy,
    listen: read.raw('CTLL_FILTER_LISTEN') ?? DEFAULT_LISTEN,
    upstream: read.raw('CTLL_FILTER_UPSTREAM') ?? DEFAULT_UPSTREAM,
    logLevel: logLevel ?? 'info',
  };
}
