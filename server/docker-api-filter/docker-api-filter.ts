/**
 * A filter in front of the Docker Engine API: the api-backend talks to this instead of
 * /var/run/docker.sock, and gets only what its Docker runtime (server/src/runtime/docker) uses.
 *
 * Why: whoever can talk to the engine's socket is root on the host (one `docker run -v /:/host
 * --privileged` away). A filter that only matches paths is not enough, because creating a
 * container is one endpoint and the danger is in its body; this one reads the bodies:
 *
 *  - endpoints: GET /_ping, /version; GET /containers/json, /networks (lists), /events;
 *    POST /containers/create, /networks/create; for one container: GET json, POST start, stop,
 *    wait, attach, rename, DELETE; for one network: GET, DELETE. Anything else (exec, images, build,
 *    volumes, swarm, plugins, system, commit, archive, update...) is refused with 403.
 *  - POST /containers/create: only the proxy image (CTLL_PROXY_IMAGE), name ctll-proxy-<hash>
 *    (ctll-<stack>-proxy-<hash> with a stack name, the same as the runtime's: naming.ts),
 *    labelled as a streaming proxy, non-root user, read-only root filesystem, all capabilities
 *    dropped and none added, no-new-privileges, no binds/mounts/devices/volumes, no host or
 *    container namespaces, no published ports, memory (without swap), CPU and pids limits within
 *    ceilings, only a /tmp tmpfs, and attached only to a network this filter lets it see. Any
 *    HostConfig setting not on the list is refused, so a new escape hatch in a future engine is
 *    refused by default.
 *  - POST /networks/create: only ctll-net-<hash> (ctll-<stack>-net-<hash>), bridge driver, Internal, a subnet inside
 *    CTLL_SUBNET_RANGE (a runaway allocation cannot shadow the host's own routes), bridge name
 *    ctll-<hex>, no IPv6, labelled as a user network.
 *  - POST /containers/<id>/rename (a spare proxy taken by a user: spare-pool.ts): only to another
 *    proxy name of this stack.
 *  - Per-object calls (inspect, start, stop, wait, attach, rename, remove) resolve the object first and
 *    answer 404 unless it carries our labels; the forwarded call then names it by its full id, so
 *    a name swapped in between cannot redirect it.
 *  - Stack scoping (CTLL_STACK_NAME): created objects get `cloudtolocalllm.stack=<name>`, the
 *    container/event lists and per-object calls see only objects with it. Several stacks (or a
 *    test, or a benchmark) on one engine then never adopt or remove each other's proxies. The
 *    cloud server scopes itself the same way with the same variable; the filter makes it binding.
 *  - Queries are rebuilt from the keys each endpoint needs; request bodies other than the two
 *    creates are dropped (the engine reads none for these endpoints); request headers are not
 *    forwarded (no X-Registry-Auth, no Upgrade: connection hijacking is refused).
 *
 * What it does NOT make safe: a compromised cloud server can still start proxy containers (as
 * many as the limits allow), read their secrets, and stop them; it cannot reach the host.
 *
 * Runs as its own small service (server/deploy/docker-compose.multi.yml: docker-api-filter,
 * network_mode none), listening on a unix socket in a volume shared with the api-backend only.
 * No dependencies beyond Node; bundled into /app/docker-api-filter.mjs of the api-backend image.
 *
 *   node docker-api-filter.mjs                 serve (configuration from the environment)
 *   node docker-api-filter.mjs --healthcheck   exit 0 if the engine answers /_ping through it
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { overlaps, parseCidr, parseIpv4, cidrEnd, type Cidr } from '@cloudtolocalllm/proxy-spec/cidr';
import {
  BRIDGE_NAME_PATTERN,
  PROXY_CONTAINER_KEYS,
  USER_NETWORK_KEYS,
  type ProxyHostConfigKey,
  type UserNetworkOption,
} from '@cloudtolocalllm/proxy-spec/container-spec';
import { loadFilterConfig, type FilterLogLevel } from './filter-config.js';
import { LABEL_STACK, LABEL_TYPE, namePattern, TYPE_NETWORK, TYPE_PROXY } from '@cloudtolocalllm/proxy-spec/naming';

export { LABEL_STACK };

export interface FilterPolicy {
  /** The only image proxies may be created from. */
  image: string;
  /** User networks' subnets must lie inside this block. */
  subnetRange: string;
  /** When set, objects are labelled with it and only objects carrying it are visible. */
  stack?: string;
  maxMemoryBytes: number;
  maxNanoCpus: number;
  maxPids: number;
}

export interface FilterOptions {
  policy: FilterPolicy;
  /** Unix socket this filter listens on. */
  listen: string;
  /** The engine's socket. */
  upstream: string;
  /** The least level written by the default log (filter-config.ts reads LOG_LEVEL). Default: info. */
  logLevel?: FilterLogLevel;
  /** One JSON line per refusal (and per request at debug). Default: stderr. */
  log?: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export { DEFAULT_POLICY_LIMITS, loadFilterConfig, policyFromEnv, type FilterConfig } from './filter-config.js';

/** A refusal with the status and the reason, answered in the engine's error shape `{"message"}`. */
export class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
function refuse(message: string): never {
  throw new Refusal(403, `refused by the Docker API filter: ${message}`);
}

const VERSION = '(?:/v1\\.\\d{1,3})?';
const ID = '([A-Za-z0-9][A-Za-z0-9_.-]{0,127})';
const HASH = /^[0-9a-f]{64}$/;
/** The names the runtime gives a stack's objects (naming.ts): ctll-[<stack>-]proxy|net-<hash>. */
const proxyName = (p: FilterPolicy): RegExp => namePattern('proxy', p.stack);
const networkName = (p: FilterPolicy): RegExp => namePattern('net', p.stack);
const scopedName = (kind: 'proxy' | 'net', p: FilterPolicy): string => `ctll-${p.stack === undefined ? '' : `${p.stack}-`}${kind}-<user hash>`;

type Kind = 'container' | 'network';

/** One allowed endpoint: what to do with it. */
interface Route {
  method: string[];
  pattern: RegExp;
  name: string;
  /** Query keys forwarded (others are dropped). */
  query: readonly string[];
  /** Per-object: which kind the captured id names. */
  object?: Kind;
  /** How the request is checked / rewritten beyond the query. */
  special?: 'create-container' | 'create-network' | 'list-containers' | 'list-networks' | 'events' | 'rename-container';
}

const ROUTES: readonly Route[] = [
  { method: ['GET', 'HEAD'], pattern: new RegExp(`^${VERSION}/_ping$`), name: 'ping', query: [] },
  { method: ['GET'], pattern: new RegExp(`^${VERSION}/version$`), name: 'version', query: [] },
  { method: ['GET'], pattern: new RegExp(`^${VERSION}/containers/json$`), name: 'container list', query: ['all', 'filters', 'limit'], special: 'list-containers' },
  { method: ['POST'], pattern: new RegExp(`^${VERSION}/containers/create$`), name: 'container create', query: ['name'], special: 'create-container' },
  { method: ['GET'], pattern: new RegExp(`^${VERSION}/containers/${ID}/json$`), name: 'container inspect', query: [], object: 'container' },
  { method: ['POST'], pattern: new RegExp(`^${VERSION}/containers/${ID}/start$`), name: 'container start', query: [], object: 'container' },
  { method: ['POST'], pattern: new RegExp(`^${VERSION}/containers/${ID}/stop$`), name: 'container stop', query: ['t', 'signal'], object: 'container' },
  { method: ['POST'], pattern: new RegExp(`^${VERSION}/containers/${ID}/wait$`), name: 'container wait', query: ['condition'], object: 'container' },
  { method: ['POST'], pattern: new RegExp(`^${VERSION}/containers/${ID}/attach$`), name: 'container attach', query: ['stream', 'stdout', 'stderr', 'logs'], object: 'container' },
  { method: ['POST'], pattern: new RegExp(`^${VERSION}/containers/${ID}/rename$`), name: 'container rename', query: ['name'], object: 'container', special: 'rename-container' },
  { method: ['DELETE'], pattern: new RegExp(`^${VERSION}/containers/${ID}$`), name: 'container remove', query: ['force', 'v'], object: 'container' },
  { method: ['GET'], pattern: new RegExp(`^${VERSION}/networks$`), name: 'network list', query: ['filters'], special: 'list-networks' },
  { method: ['POST'], pattern: new RegExp(`^${VERSION}/networks/create$`), name: 'network create', query: [], special: 'create-network' },
  { method: ['GET'], pattern: new RegExp(`^${VERSION}/networks/${ID}$`), name: 'network inspect', query: ['verbose', 'scope'], object: 'network' },
  { method: ['DELETE'], pattern: new RegExp(`^${VERSION}/networks/${ID}$`), name: 'network remove', query: [], object: 'network' },
  { method: ['GET'], pattern: new RegExp(`^${VERSION}/events$`), name: 'events', query: ['since', 'until', 'filters'], special: 'events' },
];

export interface Matched {
  route: Route;
  /** The version prefix as sent ('' or '/v1.41'). */
  version: string;
  /** The object id or name of a per-object call. */
  id?: string;
  query: URLSearchParams;
}

/** Matches method and path against the allow-list; throws a Refusal otherwise. */
export function matchRequest(method: string, rawUrl: string): Matched {
  // Percent-encoding, dot segments, doubled slashes, backslashes: the engine's router and ours
  // could read them differently, and nothing the runtime sends contains them.
  const q = rawUrl.indexOf('?');
  const pathname = q < 0 ? rawUrl : rawUrl.slice(0, q);
  if (!pathname.startsWith('/') || /%|\/\/|\\|\/\.\.?(\/|$)/.test(pathname)) refuse(`the path ${JSON.stringify(pathname.slice(0, 200))} is not a plain API path`);
  const search = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1));
  for (const route of ROUTES) {
    const m = route.pattern.exec(pathname);
    if (!m) continue;
    if (!route.method.includes(method)) continue;
    const version = /^\/v1\.\d{1,3}/.exec(pathname)?.[0] ?? '';
    const query = new URLSearchParams();
    for (const key of route.query) {
      const values = search.getAll(key);
      if (values.length > 1) refuse(`the query parameter ${key} appears more than once`);
      if (values.length === 1) query.set(key, values[0]!);
    }
    return { route, version, ...(m[1] ? { id: m[1] } : {}), query };
  }
  return refuse(`${method} ${pathname.replace(/[0-9a-f]{64}/g, '<id>')} is not an endpoint the cloud server's Docker runtime uses`);
}

// ---------------------------------------------------------------------------------------------
// Body checks

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
/** null, undefined, false, 0, '', [] and {}: what clients send for "not set". */
const isUnset = (v: unknown): boolean =>
  v === undefined || v === null || v === false || v === 0 || v === '' || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);

/** One check for each HostConfig setting of the proxy spec (PROXY_HOST_CONFIG_KEYS). Every other key must be unset. */
const HOST_CONFIG_CHECKS: Record<ProxyHostConfigKey, (v: unknown, p: FilterPolicy) => void> = {
  Memory: (v, p) => {
    if (typeof v !== 'number' || v <= 0 || v > p.maxMemoryBytes) refuse(`HostConfig.Memory must be a limit above 0 and at most ${p.maxMemoryBytes} bytes`);
  },
  MemorySwap: () => undefined, // checked with Memory below: must equal it (no swap)
  NanoCpus: (v, p) => {
    if (typeof v !== 'number' || v <= 0 || v > p.maxNanoCpus) refuse(`HostConfig.NanoCpus must be a quota above 0 and at most ${p.maxNanoCpus}`);
  },
  PidsLimit: (v, p) => {
    if (typeof v !== 'number' || v <= 0 || v > p.maxPids) refuse(`HostConfig.PidsLimit must be a limit above 0 and at most ${p.maxPids}`);
  },
  ReadonlyRootfs: (v) => {
    if (v !== true) refuse('HostConfig.ReadonlyRootfs must be true');
  },
  Tmpfs: (v) => {
    if (v === undefined || v === null) return;
    if (!isObject(v)) refuse('HostConfig.Tmpfs must be an object');
    for (const [path, opts] of Object.entries(v as Json)) {
      if (path !== '/tmp') refuse(`HostConfig.Tmpfs may only mount /tmp, not ${JSON.stringify(path)}`);
      const flags = String(opts).split(',');
      if (!flags.includes('noexec') || !flags.includes('nosuid')) refuse('the /tmp tmpfs must be mounted noexec,nosuid');
    }
  },
  CapDrop: (v) => {
    if (!Array.isArray(v) || !v.some((c) => String(c).toUpperCase() === 'ALL')) refuse('HostConfig.CapDrop must contain ALL');
  },
  SecurityOpt: (v) => {
    const opts = Array.isArray(v) ? v.map(String) : [];
    if (!opts.some((o) => o === 'no-new-privileges' || o === 'no-new-privileges:true')) refuse('HostConfig.SecurityOpt must contain no-new-privileges');
    const other = opts.find((o) => o !== 'no-new-privileges' && o !== 'no-new-privileges:true');
    if (other !== undefined) refuse(`HostConfig.SecurityOpt may not contain ${JSON.stringify(other)}`);
  },
  RestartPolicy: (v) => {
    if (v === undefined || v === null) return;
    const name = isObject(v) ? v['Name'] : undefined;
    if (name !== undefined && name !== '' && name !== 'no') refuse('HostConfig.RestartPolicy must be "no" (the proxy manager decides about restarts)');
  },
  AutoRemove: () => undefined,
  // In the spec as `false`, written out; any other value is what the filter exists to refuse.
  Privileged: (v) => {
    if (!isUnset(v)) refuse('HostConfig.Privileged is not allowed');
  },
  PublishAllPorts: (v) => {
    if (!isUnset(v)) refuse('HostConfig.PublishAllPorts is not allowed');
  },
  NetworkMode: (v, p) => {
    if (typeof v !== 'string' || !networkName(p).test(v)) refuse(`HostConfig.NetworkMode must be a user network (${scopedName('net', p)})`);
  },
  PortBindings: (v) => {
    if (!isUnset(v)) refuse('HostConfig.PortBindings must be empty: proxies publish no port');
  },
  IpcMode: (v) => {
    if (!isUnset(v) && v !== 'private' && v !== 'none') refuse('HostConfig.IpcMode must be private or none');
  },
  LogConfig: (v) => {
    if (v === undefined || v === null) return;
    const type = isObject(v) ? v['Type'] : undefined;
    if (type !== undefined && type !== '' && type !== 'json-file' && type !== 'local') refuse('HostConfig.LogConfig.Type must be json-file or local');
  },
};
/** Settings whose mere presence changes behaviour, even empty (an empty MaskedPaths unmasks /proc). */
const HOST_CONFIG_PRESENCE = new Set(['MaskedPaths', 'ReadonlyPaths']);

/**
 * Top-level container settings allowed: the proxy spec's (PROXY_CONTAINER_KEYS; HostConfig and
 * NetworkingConfig are checked separately), and the ones engine clients send at their harmless
 * defaults (attach and tty flags are refused when true, below). dockerode sends the name in the
 * body as well as in the query; the query's is the one used.
 */
const CONTAINER_KEYS = new Set<string>([
  ...PROXY_CONTAINER_KEYS,
  'StopTimeout',
  'Hostname',
  'Domainname',
  'AttachStdin',
  'AttachStdout',
  'AttachStderr',
  'Tty',
  'OpenStdin',
  'StdinOnce',
]);

function checkUser(user: unknown): void {
  // eslint-disable-next-line security/detect-unsafe-regex -- the optional group starts with a literal ':' the digits cannot match: linear
  if (typeof user !== 'string' || !/^[1-9]\d*(:[1-9]\d*)?$/.test(user)) refuse('User must be a non-root numeric uid[:gid] (e.g. 1001:1001)');
}

/**
 * Checks a container create body; returns the body to forward (with the stack label added) and
 * the network it joins (the caller checks it is ours).
 */
export function checkContainerCreate(name: string | null, body: unknown, policy: FilterPolicy): { body: Json; network: string } {
  if (!name || !proxyName(policy).test(name.replace(/^\//, ''))) refuse(`containers must be named ${scopedName('proxy', policy)}`);
  if (!isObject(body)) return refuse('the container create body must be a JSON object');
  for (const [key, value] of Object.entries(body)) {
    if (CONTAINER_KEYS.has(key)) continue;
    if (!isUnset(value)) refuse(`the container setting ${key} is not allowed`);
  }
  if (body['Image'] !== policy.image) refuse(`only the proxy image ${policy.image} may be run`);
  const labels = body['Labels'];
  if (!isObject(labels) || labels[LABEL_TYPE] !== TYPE_PROXY) refuse(`containers must carry the label ${LABEL_TYPE}=${TYPE_PROXY}`);
  checkUser(body['User']);
  for (const key of ['AttachStdin', 'OpenStdin', 'Tty'] as const) if (body[key] === true) refuse(`${key} is not allowed`);

  const hc = body['HostConfig'];
  if (!isObject(hc)) return refuse('HostConfig is required (limits, read-only root filesystem, no capabilities)');
  for (const [key, value] of Object.entries(hc)) {
    const check = HOST_CONFIG_CHECKS[key as ProxyHostConfigKey] as unknown;
    if (check) continue;
    if (HOST_CONFIG_PRESENCE.has(key) && value !== undefined && value !== null) refuse(`HostConfig.${key} is not allowed`);
    if (!isUnset(value)) refuse(`HostConfig.${key} is not allowed`);
  }
  // The required ones are checked even when absent.
  for (const [key, check] of Object.entries(HOST_CONFIG_CHECKS)) check(hc[key], policy);
  if (hc['MemorySwap'] !== hc['Memory']) refuse('HostConfig.MemorySwap must equal HostConfig.Memory (no swap)');
  const network = hc['NetworkMode'] as string;

  const nc = body['NetworkingConfig'];
  if (nc !== undefined && nc !== null) {
    const endpoints = isObject(nc) ? nc['EndpointsConfig'] : undefined;
    if (endpoints !== undefined && endpoints !== null) {
      if (!isObject(endpoints)) refuse('NetworkingConfig.EndpointsConfig must be an object');
      for (const [net, cfg] of Object.entries(endpoints as Json)) {
        if (net !== network) refuse('NetworkingConfig may only name the container\'s own network (HostConfig.NetworkMode)');
        if (isObject(cfg) && !isUnset(cfg['Links'])) refuse('NetworkingConfig links are not allowed');
      }
    }
  }
  const out: Json = { ...body, Labels: { ...labels } };
  if (policy.stack !== undefined) {
    const given = labels[LABEL_STACK];
    if (given !== undefined && given !== policy.stack) refuse(`the label ${LABEL_STACK} must be ${policy.stack}`);
    (out['Labels'] as Json)[LABEL_STACK] = policy.stack;
  }
  return { body: out, network };
}

/** A rename (a spare taken by a user) may only give a proxy of this stack another proxy name of it. */
export function checkRename(name: string | null, policy: FilterPolicy): void {
  if (!name || !proxyName(policy).test(name)) refuse(`containers may only be renamed to ${scopedName('proxy', policy)}`);
}

/** One check for each network option of the proxy spec (USER_NETWORK_OPTIONS); no other option is allowed. */
const NETWORK_OPTIONS: Record<UserNetworkOption, (v: unknown) => boolean> = {
  'com.docker.network.bridge.name': (v) => typeof v === 'string' && BRIDGE_NAME_PATTERN.test(v),
  'com.docker.network.bridge.enable_icc': (v) => v === 'false',
  'com.docker.network.bridge.enable_ip_masquerade': (v) => v === 'false',
};
const NETWORK_KEYS = new Set<string>(USER_NETWORK_KEYS);

function inside(inner: Cidr, outer: Cidr): boolean {
  return inner.network >= outer.network && cidrEnd(inner) <= cidrEnd(outer);
}

export function checkNetworkCreate(body: unknown, policy: FilterPolicy): Json {
  if (!isObject(body)) return refuse('the network create body must be a JSON object');
  for (const [key, value] of Object.entries(body)) if (!NETWORK_KEYS.has(key) && !isUnset(value)) refuse(`the network setting ${key} is not allowed`);
  if (typeof body['Name'] !== 'string' || !networkName(policy).test(body['Name'])) refuse(`networks must be named ${scopedName('net', policy)}`);
  if (body['Driver'] !== 'bridge') refuse('networks must use the bridge driver');
  if (body['Internal'] !== true) refuse('networks must be Internal (no route out)');
  if (body['Attachable'] === true) refuse('networks must not be attachable');
  if (body['EnableIPv6'] === true) refuse('networks must not enable IPv6');
  const labels = body['Labels'];
  if (!isObject(labels) || labels[LABEL_TYPE] !== TYPE_NETWORK) refuse(`networks must carry the label ${LABEL_TYPE}=${TYPE_NETWORK}`);
  const options = body['Options'];
  if (options !== undefined && options !== null) {
    if (!isObject(options)) refuse('Options must be an object');
    for (const [key, value] of Object.entries(options as Json)) {
      const ok = NETWORK_OPTIONS[key as UserNetworkOption] as ((v: unknown) => boolean) | undefined;
      if (!ok) refuse(`the network option ${key} is not allowed`);
      if (!ok!(value)) refuse(`the network option ${key}=${JSON.stringify(value)} is not allowed`);
    }
  }
  if (!isObject(options) || typeof options['com.docker.network.bridge.name'] !== 'string') refuse('networks must name their bridge ctll-<hex> (the host firewall matches ctll-+)');
  const ipam = body['IPAM'];
  const configs = isObject(ipam) ? ipam['Config'] : undefined;
  if (!isObject(ipam) || (ipam['Driver'] !== undefined && ipam['Driver'] !== 'default') || !Array.isArray(configs) || configs.length !== 1) {
    refuse('IPAM must be the default driver with exactly one subnet');
  }
  const range = parseCidr(policy.subnetRange);
  const config = (configs as unknown[])[0];
  if (!isObject(config)) return refuse('IPAM.Config[0] must be an object');
  for (const key of Object.keys(config)) if (key !== 'Subnet' && key !== 'Gateway' && !isUnset(config[key])) refuse(`IPAM.Config.${key} is not allowed`);
  let subnet: Cidr;
  try {
    subnet = parseCidr(String(config['Subnet']));
  } catch (e) {
    return refuse(`IPAM subnet: ${(e as Error).message}`);
  }
  if (!inside(subnet, range)) refuse(`the subnet ${String(config['Subnet'])} is outside CTLL_SUBNET_RANGE ${policy.subnetRange}`);
  if (config['Gateway'] !== undefined) {
    let gw: number;
    try {
      gw = parseIpv4(String(config['Gateway']));
    } catch (e) {
      return refuse(`IPAM gateway: ${(e as Error).message}`);
    }
    if (!overlaps({ network: gw, prefix: 32 }, subnet)) refuse('the gateway must lie inside the subnet');
  }
  const out: Json = { ...body, Labels: { ...labels } };
  if (policy.stack !== undefined) {
    const given = labels[LABEL_STACK];
    if (given !== undefined && given !== policy.stack) refuse(`the label ${LABEL_STACK} must be ${policy.stack}`);
    (out['Labels'] as Json)[LABEL_STACK] = policy.stack;
  }
  return out;
}

/** Parses a `filters` query (both the list and the old map form) into label → values. */
export function parseFilters(raw: string | null): Record<string, string[]> {
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return refuse('the filters parameter is not JSON');
  }
  if (!isObject(parsed)) return refuse('the filters parameter must be a JSON object');
  const out: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (Array.isArray(value)) out[key] = value.map(String);
    else if (isObject(value)) out[key] = Object.entries(value).filter(([, on]) => on === true).map(([k]) => k);
    else refuse(`the filter ${key} must be a list`);
  }
  return out;
}

/**
 * For container lists and events: the runtime's own label filter must be there (so nothing
 * else is listed), and the stack label is added. For network lists the label is added only to
 * lists that already ask for user networks (the subnet allocator lists all networks, read only).
 */
export function scopeFilters(raw: string | null, type: string, policy: FilterPolicy, required: boolean): string | null {
  const filters = parseFilters(raw);
  const labels = filters['label'] ?? [];
  const wanted = `${LABEL_TYPE}=${type}`;
  if (!labels.includes(wanted)) {
    if (required) refuse(`this call must filter on the label ${wanted}`);
    return raw;
  }
  if (policy.stack !== undefined) {
    const stackLabel = `${LABEL_STACK}=${policy.stack}`;
    if (labels.some((l) => l.startsWith(`${LABEL_STACK}=`) && l !== stackLabel)) refuse(`the label filter ${LABEL_STACK} must be ${policy.stack}`);
    if (!labels.includes(stackLabel)) labels.push(stackLabel);
  }
  filters['label'] = labels;
  return JSON.stringify(filters);
}

/** Is this object (its inspect answer's labels) one the filter lets the client touch? */
export function isOurs(kind: Kind, labels: unknown, policy: FilterPolicy): boolean {
  if (!isObject(labels)) return false;
  if (labels[LABEL_TYPE] !== (kind === 'container' ? TYPE_PROXY : TYPE_NETWORK)) return false;
  if (policy.stack !== undefined && labels[LABEL_STACK] !== policy.stack) return false;
  const owner = labels['cloudtolocalllm.owner'];
  return typeof owner === 'string' && HASH.test(owner);
}

// ---------------------------------------------------------------------------------------------
// The server

interface UpstreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function upstreamJson(socketPath: string, method: string, path: string, body?: Buffer): Promise<UpstreamAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        method,
        path,
        agent: false,
        headers: { host: 'docker', ...(body ? { 'content-type': 'application/json', 'content-length': body.length } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 8 << 20) res.destroy(new Error('the engine answer is larger than 8 MiB'));
          else chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('the engine did not answer within 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Refusal(413, `refused by the Docker API filter: the request body is larger than ${limit} bytes`));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8') || 'null');
  } catch {
    return refuse('the request body is not JSON');
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

function sendError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export interface DockerApiFilter {
  readonly listen: string;
  close(): Promise<void>;
}

export async function startDockerApiFilter(options: FilterOptions): Promise<DockerApiFilter> {
  const { policy, upstream } = options;
  parseCidr(policy.subnetRange); // fail at start, not at the first network
  const order = { debug: 10, info: 20, warn: 30, error: 40 } as const;
  const min = order[options.logLevel ?? 'info'];
  const log: NonNullable<FilterOptions['log']> =
    options.log ??
    ((level, msg, fields) => {
      if (order[level] < min) return;
      process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, component: 'docker-api-filter', ...fields }) + '\n');
    });

  /** Resolves a per-object id to the object's full id if it is ours; 404 otherwise. */
  async function resolveObject(kind: Kind, version: string, id: string): Promise<string> {
    const path = `${version}/${kind === 'container' ? 'containers' : 'networks'}/${encodeURIComponent(id)}${kind === 'container' ? '/json' : ''}`;
    const answer = await upstreamJson(upstream, 'GET', path);
    const notFound = new Refusal(404, kind === 'container' ? `No such container: ${id}` : `network ${id} not found`);
    if (answer.status === 404) throw notFound;
    if (answer.status !== 200) throw new Refusal(answer.status, `the engine could not inspect ${kind} ${id} (HTTP ${answer.status})`);
    const info = JSON.parse(answer.body.toString('utf8')) as { Id?: string; Config?: { Labels?: unknown }; Labels?: unknown };
    const labels = kind === 'container' ? info.Config?.Labels : info.Labels;
    if (!isOurs(kind, labels, policy) || typeof info.Id !== 'string' || !/^[0-9a-f]{64}$/.test(info.Id)) throw notFound;
    return info.Id;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    let matched: Matched;
    try {
      if (req.headers.upgrade) refuse('connection upgrades (hijacked attach/exec) are not allowed');
      matched = matchRequest(method, url);
    } catch (e) {
      req.resume();
      throw e;
    }
    const { route, version, query } = matched;
    let path = url.split('?')[0]!;
    let forwardBody: Buffer | undefined;

    if (route.special === 'create-container' || route.special === 'create-network') {
      const parsed = parseJson(await readBody(req, 256 * 1024));
      if (route.special === 'create-container') {
        const { body, network } = checkContainerCreate(query.get('name'), parsed, policy);
        await resolveObject('network', version, network).catch((e: unknown) => {
          if (e instanceof Refusal && e.status === 404) refuse(`the network ${network} is not a user network of this stack`);
          throw e;
        });
        forwardBody = Buffer.from(JSON.stringify(body));
      } else {
        forwardBody = Buffer.from(JSON.stringify(checkNetworkCreate(parsed, policy)));
      }
    } else {
      req.resume(); // the engine reads no body on these endpoints: drop it
      if (route.special === 'list-containers' || route.special === 'events') {
        const scoped = scopeFilters(query.get('filters'), TYPE_PROXY, policy, true);
        if (scoped) query.set('filters', scoped);
      } else if (route.special === 'list-networks') {
        const scoped = scopeFilters(query.get('filters'), TYPE_NETWORK, policy, false);
        if (scoped) query.set('filters', scoped);
      }
      if (route.special === 'rename-container') checkRename(query.get('name'), policy);
      if (route.object && matched.id) {
        const fullId = await resolveObject(route.object, version, matched.id);
        path = path.replace(`/${matched.id}`, `/${fullId}`);
      }
    }

    const qs = query.toString();
    const upstreamReq = http.request({
      socketPath: upstream,
      method,
      path: qs ? `${path}?${qs}` : path,
      agent: false,
      headers: {
        host: 'docker',
        ...(forwardBody ? { 'content-type': 'application/json', 'content-length': forwardBody.length } : {}),
      },
    });
    // Streams (events, attach, wait) end when the client goes away.
    res.on('close', () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      upstreamReq.on('response', (upRes) => {
        const headers: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
        res.writeHead(upRes.statusCode ?? 502, headers);
        res.flushHeaders();
        upRes.pipe(res);
        upRes.on('end', () => resolve());
        upRes.on('error', () => {
          res.destroy();
          resolve();
        });
        upRes.on('aborted', () => res.destroy());
      });
      upstreamReq.on('error', (e) => reject(e));
      upstreamReq.end(forwardBody);
    });
    log('debug', 'forwarded', { method, endpoint: route.name });
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof Refusal) {
        if (e.status === 403 || e.status === 413) {
          log('warn', 'refused', { type: 'audit', action: 'docker.refused', method: req.method, path: (req.url ?? '').split('?')[0]!.replace(/[0-9a-f]{64}/g, '<id>'), reason: e.message });
        }
        sendError(res, e.status, e.message);
        return;
      }
      log('error', 'engine call failed', { method: req.method, error: (e as Error).message });
      sendError(res, 502, `the Docker API filter could not reach the engine: ${(e as Error).message}`);
    });
  });
  server.requestTimeout = 0; // event streams and waits last as long as they last
  server.headersTimeout = 30_000;
  server.on('upgrade', (_req, socket) => {
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"message":"refused by the Docker API filter: connection upgrades are not allowed"}');
  });

  await removeStaleSocket(options.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Whoever can reach the file may connect: it lives in a volume only the api-backend mounts.
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the socket path from the filter's own configuration
  chmodSync(options.listen, 0o666);
  log('info', 'listening', { listen: options.listen, upstream, image: policy.image, subnetRange: policy.subnetRange, stack: policy.stack ?? null });
  return {
    listen: options.listen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A socket file left by a previous run (the volume outlives the container) blocks listen(). */
async function removeStaleSocket(path: string): Promise<void> {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the socket path from the filter's own configuration
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`${path} is in use by another process`);
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the socket path from the filter's own configuration
  unlinkSync(path);
}

async function healthcheck(socketPath: string): Promise<never> {
  const ok = await new Promise<boolean>((resolve) => {
    const req = http.get({ socketPath, path: '/_ping', agent: false, timeout: 4000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
  process.exit(ok ? 0 : 1);
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  try {
    const config = loadFilterConfig();
    if (process.argv.includes('--healthcheck')) await healthcheck(config.listen);
    const filter = await startDockerApiFilter(config);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void filter.close().then(() => process.exit(0)));
  } catch (e) {
    process.stderr.write(`docker-api-filter: ${(e as Error).message}\n`);
    process.exit(2);
  }
}
