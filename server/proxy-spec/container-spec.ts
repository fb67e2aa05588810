/**
 * What the engine is asked to create for one user: the network and the container, as plain
 * option objects (no engine calls here, so the hardening can be unit-tested and reviewed in one
 * place). Every setting below is there to confine one user's proxy:
 *
 *  - its own bridge network, `Internal` (no NAT, and the engine drops traffic forwarded between
 *    this bridge and any other interface: the proxy cannot open connections to the internet or to
 *    other users' networks; the host firewall of isolation-firewall.ts makes those fail at once
 *    and also keeps it from the host's own services); the API server on the host reaches it
 *    directly at its IP on that bridge, so no port is published;
 *  - hard resource ceilings: memory with no swap, CPU time (NanoCpus is a quota; CpuShares
 *    would only be a relative weight and let one proxy take every core), a process limit;
 *  - a read-only root filesystem with a small non-executable /tmp, a non-root user, no Linux
 *    capabilities, no privilege gain through setuid binaries;
 *  - removed by the engine when it exits (nothing of a user lingers), never restarted by the
 *    engine (the proxy manager decides about restarts), and small logs.
 */
import type Dockerode from 'dockerode';
import { addressAt, parseCidr } from './cidr.js';
import { containerLabels, containerName, networkLabels, networkName } from './naming.js';

/** The image proxies run unless the operator names another (CTLL_PROXY_IMAGE). */
export const DEFAULT_PROXY_IMAGE = 'cloudtolocalllm/streaming-proxy:local';
/** Where user networks' subnets come from unless the operator names another block (CTLL_SUBNET_RANGE). */
export const DEFAULT_SUBNET_RANGE = '10.200.0.0/16';

/**
 * The settings a proxy container and a user network are made of, by name. The Docker API filter
 * (@cloudtolocalllm/docker-api-filter) derives its allow-list from these lists: it has one check
 * per setting named here (its tables are typed by them, so a setting added here without a check
 * there fails the build) and refuses every setting not named here.
 */
export const PROXY_CONTAINER_KEYS = ['name', 'Image', 'Labels', 'Env', 'User', 'ExposedPorts', 'StopSignal', 'Healthcheck', 'HostConfig', 'NetworkingConfig'] as const;
export const PROXY_HOST_CONFIG_KEYS = [
  'Memory',
  'MemorySwap',
  'NanoCpus',
  'PidsLimit',
  'ReadonlyRootfs',
  'Tmpfs',
  'CapDrop',
  'SecurityOpt',
  'Privileged',
  'RestartPolicy',
  'AutoRemove',
  'NetworkMode',
  'PortBindings',
  'PublishAllPorts',
  'IpcMode',
  'LogConfig',
] as const;
export type ProxyHostConfigKey = (typeof PROXY_HOST_CONFIG_KEYS)[number];
export const USER_NETWORK_KEYS = ['Name', 'CheckDuplicate', 'Driver', 'Internal', 'Attachable', 'EnableIPv6', 'IPAM', 'Options', 'Labels'] as const;
export const USER_NETWORK_OPTIONS = ['com.docker.network.bridge.name', 'com.docker.network.bridge.enable_icc', 'com.docker.network.bridge.enable_ip_masquerade'] as const;
export type UserNetworkOption = (typeof USER_NETWORK_OPTIONS)[number];
/** What bridgeName() makes: the host firewall matches every user network by its `ctll-` prefix. */
export const BRIDGE_NAME_PATTERN = /^ctll-[0-9a-f]{8}$/;

export const PROXY_PORT = 8080;
export const PROXY_USER = '1001:1001';

export interface ProxyLimits {
  /** Memory ceiling in bytes; also the memory+swap ceiling, so no swap. */
  memoryBytes: number;
  /** CPU quota in billionths of a CPU (0.5e9 = half a core). */
  nanoCpus: number;
  /** Most processes/threads the container may have (a fork bomb stops here). */
  pidsLimit: number;
  /**
   * How often the engine runs the image's HEALTHCHECK in each container; 0 turns it off.
   * Off by default: the proxy manager already asks every proxy's /health over HTTP every 30 s
   * (proxy-health.ts), which is what acts on a sick proxy, while the engine's check only feeds
   * `docker ps` and costs a whole new Node process plus a `runc exec` per check: about 0.2 % of a
   * core per idle proxy at 30 s, half of all the CPU 400 idle proxies used on 2 cores
   * (docs/benchmarks-proxies.md).
   */
  engineHealthIntervalMs: number;
}

export const DEFAULT_LIMITS: ProxyLimits = {
  memoryBytes: 512 * 1024 * 1024,
  nanoCpus: 0.5e9,
  pidsLimit: 128,
  engineHealthIntervalMs: 0,
};

/**
 * The Linux name of the user network's bridge: `ctll-` and the subnet's network address in hex
 * (e.g. ctll-0ac80010 for 10.200.0.16/28). Unique because subnets never overlap, at most 15
 * characters (the kernel's limit), and free of any user information. The common prefix lets
 * one host firewall rule cover all user networks (`-i ctll-+`): isolation-firewall.ts uses it to
 * stop proxies opening connections to the host and beyond.
 */
export function bridgeName(subnet: string): string {
  return `ctll-${parseCidr(subnet).network.toString(16).padStart(8, '0')}`;
}

/** The gateway (the host's side of the bridge) is the block's first address, the proxy the second. */
export function gatewayAddress(subnet: string): string {
  return addressAt(parseCidr(subnet), 1);
}

export function proxyAddress(subnet: string): string {
  return addressAt(parseCidr(subnet), 2);
}

export function proxyEndpoint(ip: string): string {
  return `http://${ip}:${PROXY_PORT}`;
}

export function networkCreateOptions(userHash: string, subnet: string, stack?: string): Dockerode.NetworkCreateOptions {
  return {
    Name: networkName(userHash, stack),
    CheckDuplicate: true,
    Driver: 'bridge',
    // No way out: Docker drops forwarded traffic between this bridge and any other interface
    // (Docker 20.10 still gives the container a default route via the gateway, so the host
    // itself is reachable; isolation-firewall.ts closes that).
    Internal: true,
    Attachable: false,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Config: [{ Subnet: subnet, Gateway: gatewayAddress(subnet) }] },
    Options: {
      'com.docker.network.bridge.name': bridgeName(subnet),
      // One container per network, so nothing to talk to anyway; off in case one is ever added.
      'com.docker.network.bridge.enable_icc': 'false',
      'com.docker.network.bridge.enable_ip_masquerade': 'false',
    } satisfies Record<UserNetworkOption, string>,
    Labels: networkLabels(userHash, subnet, stack),
  };
}

export interface ProxyContainerArgs {
  userHash: string;
  /** The per-proxy bearer secret (ProxySpec.secret). Never the user's own token. */
  secret: string;
  image: string;
  subnet: string;
  limits: ProxyLimits;
  /** The server deployment this proxy belongs to (naming.ts); none by default. */
  stack?: string;
  /** The relay's answer-head deadline (CTLL_RESPONSE_HEAD_TIMEOUT_MS); the proxy's default without it. */
  responseHeadTimeoutMs?: number;
  /** The user's concurrent-request limit (CTLL_MAX_CONCURRENT_REQUESTS), kept by the proxy too (edge routing). */
  maxConcurrentRequests?: number;
  /** Made ahead of its user, kept by this server (naming.ts, LABEL_SPARE); `userHash` is then a random id. */
  spareOf?: string;
}

export function containerCreateOptions(args: ProxyContainerArgs): Dockerode.ContainerCreateOptions {
  const { userHash, limits, stack } = args;
  const network = networkName(userHash, stack);
  return {
    name: containerName(userHash, stack),
    Image: args.image,
    Labels: containerLabels(userHash, stack, args.spareOf),
    // The owner is the hash: the proxy only compares it, and the raw id must not appear in
    // `docker inspect`. The secret has to be in the environment (the proxy reads it there); it
    // is per proxy, so reading it back (list()) reveals nothing beyond this one proxy.
    Env: [
      `PROXY_OWNER=${userHash}`,
      `PROXY_TOKEN=${args.secret}`,
      'PROXY_HOST=0.0.0.0',
      `PROXY_PORT=${PROXY_PORT}`,
      ...(args.responseHeadTimeoutMs !== undefined ? [`PROXY_RESPONSE_HEAD_TIMEOUT_MS=${args.responseHeadTimeoutMs}`] : []),
      ...(args.maxConcurrentRequests !== undefined ? [`PROXY_MAX_CONCURRENT_REQUESTS=${args.maxConcurrentRequests}`] : []),
    ],
    User: PROXY_USER,
    ExposedPorts: { [`${PROXY_PORT}/tcp`]: {} },
    StopSignal: 'SIGTERM',
    Healthcheck:
      limits.engineHealthIntervalMs > 0
        ? { Test: ['CMD', 'node', '/app/healthcheck.mjs'], Interval: limits.engineHealthIntervalMs * 1e6, Timeout: 5e9, StartPeriod: 10e9, Retries: 3 }
        : { Test: ['NONE'] },
    HostConfig: {
      Memory: limits.memoryBytes,
      MemorySwap: limits.memoryBytes,
      NanoCpus: limits.nanoCpus,
      PidsLimit: limits.pidsLimit,
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,nodev,size=16m' },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Privileged: false,
      RestartPolicy: { Name: 'no' },
      AutoRemove: true,
      NetworkMode: network,
      PortBindings: {},
      PublishAllPorts: false,
      IpcMode: 'private',
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
    } satisfies Record<ProxyHostConfigKey, unknown>,
    NetworkingConfig: {
      // A fixed address: the endpoint is known without asking the engine after start.
      EndpointsConfig: { [network]: { IPAMConfig: { IPv4Address: proxyAddress(args.subnet) } } },
    },
  };
}
