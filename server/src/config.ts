/**
 * The cloud server's configuration: environment variables (deployments) overridden by flags
 * (local runs), read once at start by loadConfig and passed down (startCloudServer hands each
 * part its values; no other server module reads process.env), validated with messages that name
 * the variable, every problem reported at once (settings.ts). Every default is written once:
 * here, or as the constant of the module that owns the concept (DEFAULT_LIMITS, the proxy spec's
 * image and subnet range, DEFAULT_MANAGER_TIMING...), which this file then uses. Adding a
 * setting is one line in loadConfig plus its row in docs/cloud-server.md's configuration table
 * (test/docs/environment.test.ts checks both).
 *
 * Why the hand-written reader (settings.ts, about 130 lines) and not zod v4 or envalid 8
 * (decided in issue 11): what a server setting needs is five kinds of value (word, text, whole
 * number in a range, on/off, one of a list, comma list), a flag that wins over the variable,
 * a blank value meaning unset (Compose passes unset variables as empty strings), cross-checks
 * with validators other modules own (the JWT settings, the subnet plan, the stack name) and
 * every problem reported at once, each naming its variable (and flag). zod would do the checks
 * but not the naming, the flags nor the blank rule: each would be a preprocess/refine written
 * around it and its issue paths rewritten into messages, as much code as the reader, plus a
 * dependency in the server bundle and, for the proxy image (whose CLI reads its settings with
 * the same reader), in every user's container. envalid names variables, but exits the process
 * through its reporter by default, has no flags, and treats '' as a value. The reader is typed,
 * tested (config.test.ts, test/docs/environment.test.ts refuses a nonsense value of every
 * documented setting with the variable named) and has no dependency.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_AUTH_FAILURES, DEFAULT_KEY_FAILURES } from './api/auth-failures.js';
import { DEFAULT_LIMITS, type LimitOptions } from './api/limits.js';
import { jwtOptionsFromEnv } from './auth/jwt-verifier.js';
import { checkMember, DEFAULT_MEMBERSHIP_INTERVAL_MS, type MembershipSource } from './cluster/membership.js';
import { checkLiveness, DEFAULT_PROBE_FAILURES, DEFAULT_PROBE_INTERVAL_MS, DEFAULT_PROBE_TIMEOUT_MS, type LivenessSettings } from './cluster/peer-liveness.js';
import type { PeerTlsFiles } from './cluster/peer-tls.js';
import { logLevelFromEnv, type Level } from './log.js';
import { FIREWALL_MODES, type FirewallMode } from './firewall/isolation-firewall.js';
import { DEFAULT_MANAGER_TIMING } from './manager/proxy-manager.js';
import { DEFAULT_RESPONSE_HEAD_TIMEOUT_MS } from './proxy/relay.js';
import { assertStackName } from '@cloudtolocalllm/proxy-spec/naming';
import { DEFAULT_IMAGE } from './runtime/docker/proxy-image.js';
import { DEFAULT_SUBNET_PREFIX, DEFAULT_SUBNET_RANGE, subnetPlan } from './runtime/docker/subnet-allocator.js';
import { Settings, type Flags } from './settings.js';

export const RUNTIMES = ['docker', 'process', 'auto'] as const;

export interface ServerConfig {
  port: number;
  /**
   * Edge routing's port (CTLL_EDGE_PORT; api/edge-route.ts), on loopback only: where nginx asks
   * where each /ollama request goes. Unset: none (no nginx in front, as for start:headless).
   */
  edgePort?: number;
  host: string;
  runtime: (typeof RUNTIMES)[number];
  /** Auth0 (or any OpenID issuer) when AUTH0_DOMAIN is set; the embedded issuer otherwise. */
  auth: { kind: 'auth0'; issuer: string; audience: string; jwksUri?: string } | { kind: 'embedded'; audience: string; issuerPort: number };
  proxyImage: string;
  subnetRange: string;
  subnetPrefix: number;
  /** The isolation firewall's mode on the Docker runtime (DockerRuntimeOptions.firewall). */
  firewall: FirewallMode;
  /** Where the isolation-firewall service confirms the rules; set, the server runs no iptables itself. */
  firewallStatusFile?: string;
  /** The server deployment's name on a shared Docker engine: it sees only its own proxies. */
  stack?: string;
  /**
   * How long a start on the Docker runtime waits for the engine (through the Docker API filter)
   * and the isolation firewall's confirmation before it gives up; 0: not at all.
   */
  readyWaitMs: number;
  /** Where the host's cgroup tree is, for each proxy's memory and CPU (cgroup-usage.ts). */
  cgroupRoot: string;
  healthIntervalMs: number;
  /** The Docker engine's own HEALTHCHECK interval in each proxy container; 0 = off. */
  engineHealthIntervalMs: number;
  /** Proxies kept started ahead of their users (Docker runtime; spare-pool.ts); 0 = none. */
  proxySpares: number;
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
  /** Several api-backends (docs/scaling.md); unset, the server is a single node as it always was. */
  cluster?: ClusterConfig;
  logLevel: Level;
}

export interface ClusterConfig {
  source: MembershipSource;
  /** This node's member address; undefined with Swarm's DNS: found among the members. */
  self?: string;
  /** Where the peer listener binds. */
  listen: { host: string; port: number };
  tls: PeerTlsFiles;
  /** How often the members are looked up and this node's users published to them. */
  intervalMs: number;
  /** How the peers are probed, and after how many misses one is down (peer-liveness.ts). */
  liveness: LivenessSettings;
}

export const DEFAULT_CLUSTER_PORT = 8443;

/** CTLL_CLUSTER_*: none set is a single node; a static list or a Swarm service, with the peer TLS files. */
function readCluster(read: Settings): ClusterConfig | undefined {
  const before = read.problems.length;
  // A list with a wrong entry is reported as that, not again as a cluster missing its settings.
  const listed = read.list('CTLL_CLUSTER_MEMBERS', { default: [], check: checkMember });
  const members = read.problems.length > before ? [] : listed;
  const service = read.word('CTLL_CLUSTER_SERVICE', { valid: /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, expected: 'a Swarm service name like ctll_api-backend' });
  const self = read.word('CTLL_NODE_ADDRESS', { valid: (v) => checkMember(v) === undefined, expected: "this node's peer address as host:port, as the other members reach it" });
  const port = read.int('CTLL_CLUSTER_PORT', { default: DEFAULT_CLUSTER_PORT, min: 1, max: 65535 });
  // node:dns takes addresses only (no names), with an optional port.
  const dnsServer = (v: string): boolean => isIP(v) !== 0 || (checkMember(v) === undefined && isIP(v.slice(0, v.lastIndexOf(':')).replace(/^\[|\]$/g, '')) !== 0);
  const dnsServers = read.list('CTLL_CLUSTER_DNS_SERVERS', { default: [], check: (v) => (dnsServer(v) ? undefined : 'must be an IP address or address:port') });
  const intervalMs = read.int('CTLL_CLUSTER_INTERVAL_MS', { default: DEFAULT_MEMBERSHIP_INTERVAL_MS, min: 100, max: 3_600_000 });
  const liveness: LivenessSettings = {
    intervalMs: read.int('CTLL_CLUSTER_PROBE_INTERVAL_MS', { default: DEFAULT_PROBE_INTERVAL_MS, min: 100, max: 60_000 }),
    timeoutMs: read.int('CTLL_CLUSTER_PROBE_TIMEOUT_MS', { default: DEFAULT_PROBE_TIMEOUT_MS, min: 50, max: 60_000 }),
    failures: read.int('CTLL_CLUSTER_PROBE_FAILURES', { default: DEFAULT_PROBE_FAILURES, min: 1, max: 100 }),
  };
  // Each in range, but a timeout past the interval would overlap probes of one peer.
  if (checkLiveness(liveness) !== undefined) read.problem(`CTLL_CLUSTER_PROBE_TIMEOUT_MS=${liveness.timeoutMs} must not exceed CTLL_CLUSTER_PROBE_INTERVAL_MS=${liveness.intervalMs} (one probe of a peer at a time)`);
  const ca = read.word('CTLL_CLUSTER_TLS_CA', { valid: /^\//, expected: 'an absolute path like /run/secrets/ctll-cluster-ca' });
  const cert = read.word('CTLL_CLUSTER_TLS_CERT', { valid: /^\//, expected: 'an absolute path like /run/secrets/ctll-cluster-cert' });
  const key = read.word('CTLL_CLUSTER_TLS_KEY', { valid: /^\//, expected: 'an absolute path like /run/secrets/ctll-cluster-key' });
  if (members.length === 0 && service === undefined) {
    if (self || ca || cert || key) read.problem('CTLL_NODE_ADDRESS and CTLL_CLUSTER_TLS_* apply to a cluster: set CTLL_CLUSTER_MEMBERS or CTLL_CLUSTER_SERVICE too, or none of them for a single node');
    return undefined;
  }
  if (members.length > 0 && service !== undefined) read.problem('set CTLL_CLUSTER_MEMBERS (a static list) or CTLL_CLUSTER_SERVICE (Swarm DNS), not both');
  if (!ca || !cert || !key) read.problem('a cluster needs CTLL_CLUSTER_TLS_CA, CTLL_CLUSTER_TLS_CERT and CTLL_CLUSTER_TLS_KEY (the hop between nodes is mutual TLS; scripts/deploy/make-cluster-ca.sh makes them)');
  if (members.length > 0 && self !== undefined && !members.includes(self)) read.problem(`CTLL_NODE_ADDRESS=${self} is not one of CTLL_CLUSTER_MEMBERS`);
  const at = self?.lastIndexOf(':') ?? -1;
  // Named, the node listens on its own address (several nodes on one host, each on its own IP).
  // Unnamed (a Swarm task, or one list given alike to every task of a global service) it listens
  // on every interface and finds itself among the members by its own addresses (cluster-node.ts),
  // so a list's members must all use the port it listens on.
  if (members.length > 0 && self === undefined) {
    const other = members.find((m) => Number(m.slice(m.lastIndexOf(':') + 1)) !== port);
    if (other) read.problem(`CTLL_CLUSTER_MEMBERS entry ${other} does not use the port of CTLL_CLUSTER_PORT (${port}); without CTLL_NODE_ADDRESS each node listens on that port and finds itself among the members by its own addresses`);
  }
  const listen = self !== undefined ? { host: self.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(self.slice(at + 1)) } : { host: '0.0.0.0', port };
  if (service !== undefined && self !== undefined && listen.port !== port) read.problem(`CTLL_NODE_ADDRESS=${self} must use the port of CTLL_CLUSTER_PORT (${port}): the other members find this node by its address and that port`);
  const source: MembershipSource =
    members.length > 0 ? { kind: 'static', members } : { kind: 'dns', service: service ?? '', port, intervalMs, ...(dnsServers.length ? { servers: dnsServers } : {}) };
  return { source, ...(self !== undefined ? { self } : {}), listen, tls: { ca: ca ?? '', cert: cert ?? '', key: key ?? '' }, intervalMs, liveness };
}

/** METRICS_TOKEN, or the content of METRICS_TOKEN_FILE (a Docker secret: not in the service's definition). */
function readMetricsToken(read: Settings): string | undefined {
  const valid = /^.{16,}$/;
  const expected = 'at least 16 characters (scripts/deploy generates 64 hex digits)';
  const direct = read.word('METRICS_TOKEN', { valid, expected });
  const file = read.word('METRICS_TOKEN_FILE', { valid: /^\//, expected: 'an absolute path like /run/secrets/ctll-metrics-token' });
  if (file === undefined) return direct;
  if (direct !== undefined) {
    read.problem('set METRICS_TOKEN or METRICS_TOKEN_FILE, not both');
    return direct;
  }
  let content: string;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's own setting (an absolute path), read once at start
    content = readFileSync(file, 'utf8').trim();
  } catch (e) {
    read.problem(`METRICS_TOKEN_FILE=${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    return undefined;
  }
  // The token itself is never repeated in a message.
  if (!valid.test(content)) read.problem(`METRICS_TOKEN_FILE=${file} must hold ${expected}`);
  return content;
}

export interface GuardConfig {
  /** How long a relayed request waits for the answer's head from the user's computer. */
  responseHeadTimeoutMs: number;
  /** Failed authentications per client address and window before 429. */
  authFailureLimit: number;
  authFailureWindowMs: number;
  /** Failed client-key attempts per user (keys with the same routing part) in the same window, from any address. */
  keyFailureLimit: number;
  /** The peer is a reverse proxy that sets X-Real-IP (nginx in the deployed stack). */
  trustRealIp: boolean;
  /** /metrics answers only with METRICS_TOKEN, and not at all without one. */
  metricsRequireToken: boolean;
  /** Proxies this server runs at most, all users together. */
  maxProxies: number;
  /** Proxy starts per user per minute. */
  proxyStartsPerMinute: number;
}

export const DEFAULT_AUDIENCE = 'https://api.cloudtolocalllm.local';
const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../dist/web', import.meta.url));

/** Docker's image reference grammar, in short: [registry.host[:port]/]path[:tag][@sha256:digest], the path lowercase. */
const IMAGE_REFERENCE = /^(?:(?:[a-zA-Z0-9-]+\.[a-zA-Z0-9.-]+|[a-zA-Z0-9-]+:\d+|localhost)(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$/;
const ORIGIN = /^https?:\/\/[^/\s]+\/?$/;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** The flags, or the reason they cannot be parsed. */
function parseFlags(argv: string[]): { flags: Flags; error?: string } {
  const options = {
    port: { type: 'string' },
    host: { type: 'string' },
    runtime: { type: 'string' },
    'keep-proxies': { type: 'boolean' },
  } as const;
  try {
    return { flags: parseArgs({ args: argv, options, strict: true }).values };
  } catch (e) {
    return { flags: {}, error: (e as Error).message };
  }
}

/**
 * The environment of a cloud server that runs for the one user of this machine (the desktop's
 * local stack, start:headless): a deployment's AUTH0_* is not its issuer (it always uses the
 * embedded one), and a proxy started ahead for a next user would never be taken.
 */
export function singleUserEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const own: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('AUTH0_')));
  own['CTLL_PROXY_SPARES'] ??= '0';
  return own;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = process.argv.slice(2)): ServerConfig {
  const { flags, error } = parseFlags(argv);
  const read = new Settings(env, flags);
  if (error) read.problem(error);

  // jwtOptionsFromEnv reads the AUTH0_* settings of the verifier; an audience is an identifier.
  read.word('AUTH0_AUDIENCE', { expected: 'an API identifier without spaces, like https://api.example.com' });
  const jwt = read.checked(() => jwtOptionsFromEnv(env), undefined);
  const auth: ServerConfig['auth'] = jwt
    ? { kind: 'auth0', issuer: jwt.issuer, audience: jwt.audience, ...(jwt.jwksUri ? { jwksUri: jwt.jwksUri } : {}) }
    : {
        kind: 'embedded',
        audience: read.word('CTLL_API_AUDIENCE', { default: DEFAULT_AUDIENCE }),
        issuerPort: read.int('CTLL_ISSUER_PORT', { default: 0, min: 0, max: 65535 }),
      };

  const subnetRange = read.word('CTLL_SUBNET_RANGE', { default: DEFAULT_SUBNET_RANGE });
  const subnetPrefix = read.int('CTLL_SUBNET_PREFIX', { default: DEFAULT_SUBNET_PREFIX, min: 1, max: 32 });
  read.checked(() => subnetPlan(subnetRange, subnetPrefix), undefined);
  const stack = read.word('CTLL_STACK_NAME', {});
  const firewallStatusFile = read.word('CTLL_FIREWALL_STATUS_FILE', { valid: /^\//, expected: 'an absolute path like /run/ctll-firewall/status.json' });
  read.checked(() => assertStackName(stack), undefined);
  const publicUrl = read.word('CTLL_PUBLIC_URL', { valid: ORIGIN, expected: 'an origin like https://cloud.example.com' });
  const metricsToken = readMetricsToken(read);
  const webClientId = read.word('AUTH0_WEB_CLIENT_ID', {});
  const desktopClientId = read.word('AUTH0_DESKTOP_CLIENT_ID', {});
  const cluster = readCluster(read);
  if (read.raw('AUTH0_DOMAIN') && !read.raw('AUTH0_DESKTOP_CLIENT_ID')) {
    read.problem('AUTH0_DESKTOP_CLIENT_ID (the client id of the Auth0 native application the desktop app signs in with) must be set when AUTH0_DOMAIN is');
  }

  const edgePort = read.int('CTLL_EDGE_PORT', { min: 0, max: 65535 });
  const config: ServerConfig = {
    port: read.int('PORT', { flag: 'port', default: 8080, min: 0, max: 65535 }),
    ...(edgePort !== undefined ? { edgePort } : {}),
    host: read.word('HOST', { flag: 'host', default: '127.0.0.1', valid: (h) => isIP(h) !== 0 || HOST_NAME.test(h), expected: 'an IP address or a host name' }),
    runtime: read.choice('CTLL_RUNTIME', RUNTIMES, { flag: 'runtime', default: 'auto' }),
    auth,
    proxyImage: read.word('CTLL_PROXY_IMAGE', { default: DEFAULT_IMAGE, valid: IMAGE_REFERENCE, expected: 'an image reference like cloudtolocalllm/streaming-proxy:local' }),
    subnetRange,
    subnetPrefix,
    firewall: read.choice('CTLL_FIREWALL', FIREWALL_MODES, { default: 'enforce' }),
    ...(firewallStatusFile ? { firewallStatusFile } : {}),
    ...(stack ? { stack } : {}),
    readyWaitMs: read.int('CTLL_READY_WAIT_SECONDS', { default: 0, min: 0, max: 3_600 }) * 1000,
    cgroupRoot: read.word('CTLL_CGROUP_ROOT', { default: '/sys/fs/cgroup', valid: /^\//, expected: 'an absolute path like /sys/fs/cgroup' }),
    engineHealthIntervalMs: read.int('CTLL_ENGINE_HEALTH_INTERVAL_MS', { default: 0, min: 0, max: 3_600_000 }),
    proxySpares: read.int('CTLL_PROXY_SPARES', { default: 2, min: 0, max: 100 }),
    healthIntervalMs: read.int('CTLL_HEALTH_INTERVAL_MS', { default: DEFAULT_MANAGER_TIMING.healthIntervalMs, min: 100, max: 3_600_000 }),
    idleTimeoutMs: read.int('CTLL_IDLE_TIMEOUT_MS', { default: DEFAULT_MANAGER_TIMING.idleTimeoutMs, min: 100, max: 86_400_000 }),
    sweepIntervalMs: read.int('CTLL_SWEEP_INTERVAL_MS', { default: DEFAULT_MANAGER_TIMING.sweepIntervalMs, min: 100, max: 3_600_000 }),
    corsOrigins: read.list('CORS_ORIGINS', {
      default: ['*'],
      check: (o) => (o === '*' || /^https?:\/\/[^/\s]+$/.test(o) ? undefined : 'must be * or an origin like https://app.example.com'),
    }),
    ...(metricsToken ? { metricsToken } : {}),
    limits: {
      requestsPerSecond: read.int('CTLL_RATE_PER_SECOND', { default: DEFAULT_LIMITS.requestsPerSecond, min: 1, max: 100_000 }),
      burst: read.int('CTLL_RATE_BURST', { default: DEFAULT_LIMITS.burst, min: 1, max: 1_000_000 }),
      maxConcurrentRequests: read.int('CTLL_MAX_CONCURRENT_REQUESTS', { default: DEFAULT_LIMITS.maxConcurrentRequests, min: 1, max: 100_000 }),
      maxBridgeConnections: read.int('CTLL_MAX_BRIDGES', { default: DEFAULT_LIMITS.maxBridgeConnections, min: 1, max: 1_000 }),
      bodyBytesPerSecond: read.int('CTLL_BODY_BYTES_PER_SECOND', { default: DEFAULT_LIMITS.bodyBytesPerSecond, min: 1024, max: 1e12 }),
      bodyBurstBytes: read.int('CTLL_BODY_BURST_BYTES', { default: DEFAULT_LIMITS.bodyBurstBytes, min: 65_536, max: 1e12 }),
      bodyStallMs: read.int('CTLL_BODY_STALL_MS', { default: DEFAULT_LIMITS.bodyStallMs, min: 100, max: 3_600_000 }),
    },
    guard: {
      responseHeadTimeoutMs: read.int('CTLL_RESPONSE_HEAD_TIMEOUT_MS', { default: DEFAULT_RESPONSE_HEAD_TIMEOUT_MS, min: 100, max: 86_400_000 }),
      authFailureLimit: read.int('CTLL_AUTH_FAILURE_LIMIT', { default: DEFAULT_AUTH_FAILURES.limit, min: 1, max: 1_000_000 }),
      authFailureWindowMs: read.int('CTLL_AUTH_FAILURE_WINDOW_MS', { default: DEFAULT_AUTH_FAILURES.windowMs, min: 1000, max: 86_400_000 }),
      keyFailureLimit: read.int('CTLL_KEY_FAILURE_LIMIT', { default: DEFAULT_KEY_FAILURES.limit, min: 1, max: 1_000_000 }),
      trustRealIp: read.bool('CTLL_TRUST_PROXY', { default: false }),
      metricsRequireToken: read.bool('CTLL_METRICS_REQUIRE_TOKEN', { default: false }),
      maxProxies: read.int('CTLL_MAX_PROXIES', { default: 500, min: 1, max: 1_000_000 }),
      proxyStartsPerMinute: read.int('CTLL_PROXY_STARTS_PER_MINUTE', { default: 10, min: 1, max: 10_000 }),
    },
    keepProxiesOnExit: read.bool('CTLL_KEEP_PROXIES_ON_EXIT', { flag: 'keep-proxies', default: false }),
    desktopClientId: desktopClientId ?? 'cloudtolocalllm-desktop',
    ...(publicUrl ? { publicUrl } : {}),
    webRoot: read.text('CTLL_WEB_ROOT', { default: DEFAULT_WEB_ROOT }),
    ...(webClientId ? { webClientId } : {}),
    ...(cluster ? { cluster } : {}),
    logLevel: read.checked(() => logLevelFromEnv(env), 'info'),
  };
  if (read.problems.length) throw new ConfigError(read.problems);
  return config;
}
