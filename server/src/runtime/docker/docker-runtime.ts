/**
 * The production ProxyRuntime: one hardened container per user on a real Docker engine, each on
 * its own internal bridge network with a subnet we allocate (see container-spec.ts for what the
 * container may and may not do, subnet-allocator.ts for why subnets are ours to hand out).
 *
 * The engine is the source of truth: names and labels derived from the user hash let list(),
 * stop() and pruneOrphans() find a user's objects after a server restart; the only in-memory
 * state is what is in flight (starts and stops, so prune leaves them alone and their container
 * deaths are not reported as crashes).
 *
 * Before the first start it installs the host firewall that keeps proxies away from host
 * services and fails their other connections fast (isolation-firewall.ts, option `firewall`).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { silentLogger, type Logger } from '../../log.js';
import { userHash as hashOf, type UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import type { ProxyInstance, ProxyRuntime, ProxyRuntimeEvents, ProxySpec, StartPhase } from '../runtime.js';
import {
  bridgeName,
  containerCreateOptions,
  DEFAULT_LIMITS,
  networkCreateOptions,
  proxyAddress,
  proxyEndpoint,
  type ProxyLimits,
} from '@cloudtolocalllm/proxy-spec/container-spec';
import { engineMessage, ignoring, statusOf } from './docker-errors.js';
import { EventWatcher, type EngineEvent } from './event-watcher.js';
import { OutputTail, waitForHealth } from './health.js';
import { BRIDGE_INTERFACES, ensureIsolationFirewall, FIREWALL_MODES, ISOLATION_CHAIN, type FirewallMode, type FirewallResult } from '../../firewall/isolation-firewall.js';
import { readFirewallCounters, readFirewallStatus } from '../../firewall/firewall-status.js';
import { syncAndReadCounters, type FirewallCounters } from '../../firewall/firewall-counters.js';
import { formatCidr, parseCidr } from '@cloudtolocalllm/proxy-spec/cidr';
import {
  assertStackName,
  assertUserHash,
  containerName,
  inStack,
  isUnclaimedSpare,
  LABEL_OWNER,
  LABEL_SPARE,
  LABEL_STACK,
  labelFilters,
  namePattern,
  networkName,
  ownerOf,
  ownerOfName,
} from '@cloudtolocalllm/proxy-spec/naming';
import { SparePool } from './spare-pool.js';
import { DEFAULT_IMAGE } from './proxy-image.js';
import { DEFAULT_SUBNET_PREFIX, DEFAULT_SUBNET_RANGE, DockerSubnetAllocator } from './subnet-allocator.js';

export { DEFAULT_IMAGE };
export type { FirewallMode };
/** Oldest engine API with everything used here (wait condition next-exit needs 1.30). */
const MIN_API_VERSION = 1.3;
/** How old a successful firewall check may be before a start checks again (a few iptables -S/-C calls). */
const FIREWALL_RECHECK_MS = 60_000;
/** How old the firewall's counters may be before a scrape refreshes them (in the background). */
const FIREWALL_COUNTERS_REFRESH_MS = 5_000;

export interface DockerRuntimeOptions {
  docker?: Docker;
  image?: string;
  /** Range the per-user subnets come from (default 10.200.0.0/16; the server's is CTLL_SUBNET_RANGE). */
  subnetRange?: string;
  /** Size of each user's subnet (default 28; the server's is CTLL_SUBNET_PREFIX). */
  subnetPrefix?: number;
  memoryBytes?: number;
  nanoCpus?: number;
  pidsLimit?: number;
  /** How long start() waits for GET /health to answer 200 (default 30 s). */
  startTimeoutMs?: number;
  /**
   * Interval of the engine's own HEALTHCHECK in each container; 0 (the default) leaves it off:
   * see ProxyLimits.engineHealthIntervalMs.
   */
  engineHealthIntervalMs?: number;
  /**
   * The server deployment whose proxies this runtime creates and sees (naming.ts); without one it
   * owns only objects without a stack label.
   */
  stack?: string;
  /** Seconds a stopping proxy gets between SIGTERM and SIGKILL (default 2). */
  stopTimeoutSeconds?: number;
  /** Passed to each proxy: how long a request waits for the bridge's answer head (relay.ts). */
  responseHeadTimeoutMs?: number;
  /** Passed to each proxy: the user's concurrent-request limit, which the proxy keeps too (edge routing). */
  maxConcurrentRequests?: number;
  /**
   * The host firewall that keeps proxies from opening connections to host services and to
   * anything beyond their network (isolation-firewall.ts), installed before the first start:
   *  - 'enforce': no proxy starts unless it is installed (needs root / CAP_NET_ADMIN on the host);
   *  - 'warn': start proxies anyway, logging that they can reach host services on 0.0.0.0;
   *  - 'off': leave the host firewall alone (it is managed some other way).
   * Default 'enforce' (the server's is CTLL_FIREWALL). Checked again before a start when the last
   * check is over a minute old, so rules flushed by someone else come back.
   */
  firewall?: FirewallMode;
  /**
   * Where the isolation firewall's keeper publishes its state (firewall-status.ts; the server's
   * CTLL_FIREWALL_STATUS_FILE). When set, this runtime never runs iptables itself: it needs no
   * privilege, and a start goes ahead (in 'enforce' mode) only while that file confirms the rules.
   */
  firewallStatusFile?: string;
  /**
   * How many proxies to keep started ahead of their users (spare-pool.ts; the server's
   * CTLL_PROXY_SPARES); 0, the default here, keeps none. A user's start then takes one: it is
   * renamed to the user's name and answers at once, and another is made in the background.
   */
  spares?: number;
  /**
   * Who keeps the spares this runtime makes (naming.ts LABEL_SPARE; the server's node address in a
   * cluster): a restarted server removes the unclaimed spares of its earlier self, and no other's.
   */
  spareHolder?: string;
  log?: Logger;
}

/** A proxy made ahead of its user: `spareId` stands in for the user hash in its names. */
interface Spare {
  readonly spareId: UserHash;
  readonly instance: ProxyInstance;
}

export type DockerProbe = { ok: true; version: string } | { ok: false; error: string };

function firewallMode(option: FirewallMode | undefined): FirewallMode {
  if (option === undefined) return 'enforce';
  if (!FIREWALL_MODES.includes(option)) throw new Error(`DockerRuntime option firewall is "${String(option)}"; use ${FIREWALL_MODES.join(', ')}`);
  return option;
}

/** "exit code 137, OOM-killed": what a person needs to know about why a container ended. */
export function describeExit(code: number | undefined, oomKilled: boolean): string {
  if (code === undefined || Number.isNaN(code)) return oomKilled ? 'OOM-killed' : 'exit code unknown';
  if (oomKilled) return `exit code ${code}, OOM-killed`;
  if (code === 137) return 'exit code 137, killed with SIGKILL';
  if (code === 143) return 'exit code 143, terminated with SIGTERM';
  return `exit code ${code}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class DockerRuntime extends EventEmitter<ProxyRuntimeEvents> implements ProxyRuntime {
  readonly kind = 'docker' as const;
  readonly docker: Docker;
  readonly image: string;
  readonly subnets: DockerSubnetAllocator;
  readonly limits: ProxyLimits;
  readonly stack: string | undefined;
  private readonly startTimeoutMs: number;
  private readonly stopTimeoutSeconds: number;
  private readonly responseHeadTimeoutMs: number | undefined;
  private readonly maxConcurrentRequests: number | undefined;
  readonly firewallMode: FirewallMode;
  private readonly firewallStatusFile: string | undefined;
  /**
   * The last firewall check: starts within FIREWALL_RECHECK_MS share it, later ones check again
   * (someone may have flushed the host's rules). `final`: 'warn' mode gave up, warned once.
   */
  private firewall: { done: Promise<void>; at: number; final: boolean } | undefined;
  /** The last refusal counters read here (no keeper) and the read under way. */
  private counters: { at: number; value: FirewallCounters | undefined } | undefined;
  private countersRead: Promise<FirewallCounters | undefined> | undefined;
  private readonly log: Logger;
  private readonly watcher: EventWatcher;
  /** Container ids whose end this runtime caused or is handling (start failures, stops): not crashes. */
  private readonly expectedExits = new Map<string, number>();
  /** Container ids the engine reported OOM for, with when: the following `die` is an OOM kill. */
  private readonly oomAt = new Map<string, number>();
  /** Users with a start or stop in progress: pruneOrphans must not take their half-made objects. */
  private readonly busy = new Map<string, number>();
  private readonly spares: SparePool<Spare>;
  private readonly spareHolder: string;
  /**
   * The network each claimed spare's user joined (it keeps the spare's name), for removing it
   * after the container is gone already (AutoRemove after a death); from claims and list().
   */
  private readonly joined = new Map<UserHash, string>();

  /**
   * Is a Docker engine reachable, and new enough? For choosing a runtime at server start and
   * for tests deciding whether to run; never throws.
   */
  static async probe(docker: Docker = new Docker()): Promise<DockerProbe> {
    try {
      const v = await withTimeout(docker.version(), 3000, 'the Docker engine');
      if (Number(v.ApiVersion) < MIN_API_VERSION) {
        return { ok: false, error: `Docker ${v.Version} (API ${v.ApiVersion}) is too old: API ${MIN_API_VERSION.toFixed(2)} or newer is needed` };
      }
      return { ok: true, version: v.Version };
    } catch (e) {
      return { ok: false, error: `the Docker engine is not reachable: ${engineMessage(e)}` };
    }
  }

  constructor(options: DockerRuntimeOptions = {}) {
    super();
    this.docker = options.docker ?? new Docker();
    this.image = options.image ?? DEFAULT_IMAGE;
    this.subnets = new DockerSubnetAllocator(this.docker, {
      range: options.subnetRange ?? DEFAULT_SUBNET_RANGE,
      prefix: options.subnetPrefix ?? DEFAULT_SUBNET_PREFIX,
    });
    this.limits = {
      memoryBytes: options.memoryBytes ?? DEFAULT_LIMITS.memoryBytes,
      nanoCpus: options.nanoCpus ?? DEFAULT_LIMITS.nanoCpus,
      pidsLimit: options.pidsLimit ?? DEFAULT_LIMITS.pidsLimit,
      engineHealthIntervalMs: options.engineHealthIntervalMs ?? DEFAULT_LIMITS.engineHealthIntervalMs,
    };
    // The server's config reads and checks CTLL_STACK_NAME and CTLL_ENGINE_HEALTH_INTERVAL_MS.
    assertStackName(options.stack);
    this.stack = options.stack;
    this.startTimeoutMs = options.startTimeoutMs ?? 30_000;
    this.stopTimeoutSeconds = options.stopTimeoutSeconds ?? 2;
    this.responseHeadTimeoutMs = options.responseHeadTimeoutMs;
    this.maxConcurrentRequests = options.maxConcurrentRequests;
    this.firewallMode = firewallMode(options.firewall);
    this.firewallStatusFile = options.firewallStatusFile;
    this.log = (options.log ?? silentLogger).child({ component: 'docker-runtime' });
    this.watcher = new EventWatcher(this.docker, {
      filters: { type: ['container'], label: labelFilters('proxy', this.stack), event: ['die', 'oom'] },
    });
    this.spareHolder = options.spareHolder ?? 'single';
    this.spares = new SparePool<Spare>({
      size: options.spares ?? 0,
      make: () => this.makeSpare(),
      discard: (spare) => this.removeUserObjects(spare.spareId, false),
      log: this.log,
    });
    this.watcher.on('event', (event) => this.onEngineEvent(event));
    this.watcher.on('disconnected', (error, retryInMs) =>
      this.log.warn('docker event stream lost; reconnecting', { error: error.message, retryInMs }),
    );
    this.watcher.start();
  }

  async start(spec: ProxySpec): Promise<ProxyInstance> {
    const hash = spec.userHash;
    assertUserHash(hash);
    // eslint-disable-next-line security/detect-possible-timing-attacks -- a consistency check of our own caller's input, no secret
    if (hashOf(spec.userId) !== hash) throw new Error('ProxySpec.userHash is not userHash(ProxySpec.userId)');
    if (spec.secret.length < 16) throw new Error('ProxySpec.secret must be at least 16 characters (the proxy refuses shorter ones)');
    const short = hash.slice(0, 12);
    const phases = new PhaseClock();
    try {
      await this.ensureFirewall();
      phases.end('firewall');
    } catch (e) {
      const error = new Error(`could not start the streaming proxy for user ${short}: ${(e as Error).message}`, { cause: e });
      this.log.error('proxy start refused', { user: short, error: error.message });
      throw error;
    }
    this.enter(hash);
    try {
      // Watching must be on before the container exists, or an early death could go unseen.
      await this.watcher.ready;
      // Leftovers of this user from a crash (ours or the engine's) would block the names.
      await this.removeUserObjects(hash, false);
      phases.end('cleanup');
      return (await this.claimSpare(hash, phases)) ?? (await this.create(spec, phases));
    } catch (e) {
      await this.removeUserObjects(hash, false).catch((cleanup: unknown) =>
        this.log.error('cleanup after a failed start failed', { user: short, error: engineMessage(cleanup) }),
      );
      const error = new Error(`could not start the streaming proxy for user ${short}: ${engineMessage(e)}`, { cause: e });
      this.log.warn('proxy start failed', { user: short, error: error.message });
      throw error;
    } finally {
      this.leave(hash);
    }
  }

  /**
   * What the isolation firewall refused (firewall-counters.ts): from the keeper's status file when
   * there is one, else read here (this process keeps the rules itself, so it is root). Undefined
   * when the firewall is off or its counters cannot be read.
   */
  async firewallCounters(): Promise<FirewallCounters | undefined> {
    if (this.firewallMode === 'off') return undefined;
    if (this.firewallStatusFile) return readFirewallCounters(this.firewallStatusFile);
    if (!this.countersRead && (!this.counters || Date.now() - this.counters.at >= FIREWALL_COUNTERS_REFRESH_MS)) {
      this.countersRead = syncAndReadCounters()
        .catch(() => undefined)
        .then((value) => {
          this.counters = { at: Date.now(), value };
          return value;
        })
        .finally(() => (this.countersRead = undefined));
    }
    // Once there is a reading a scrape never waits for iptables (five processes, 50 to 250 ms on a
    // busy 2-core host at 100 to 250 proxies): the refresh runs beside it, the keeper's way.
    return this.counters ? this.counters.value : this.countersRead;
  }

  /**
   * Installs (or re-checks) the isolation firewall, as every start does first; rejects with what
   * to do when the mode is 'enforce' and it cannot be installed. See DockerRuntimeOptions.firewall.
   */
  ensureFirewall(): Promise<void> {
    if (this.firewallMode === 'off') return Promise.resolve();
    const now = Date.now();
    // The keeper's status file is read on every start (it is one small file); iptables is asked at most once a minute.
    const statusFile = this.firewallStatusFile;
    const recheckMs = statusFile ? 0 : FIREWALL_RECHECK_MS;
    if (this.firewall && (this.firewall.final || now - this.firewall.at < recheckMs)) return this.firewall.done;
    const check = { done: Promise.resolve(), at: now, final: false };
    const confirmed = statusFile ? Promise.resolve(readFirewallStatus(statusFile)) : ensureIsolationFirewall(this.log);
    check.done = confirmed.then((result: FirewallResult) => {
      if (result.ok) return;
      if (this.firewallMode === 'warn') {
        check.final = true;
        this.log.warn(
          'isolation firewall NOT installed (firewall mode warn): proxies can open connections to every host service listening on 0.0.0.0, the cloud server included',
          { error: result.error, chain: ISOLATION_CHAIN, interfaces: BRIDGE_INTERFACES },
        );
        return;
      }
      // The next start tries again.
      if (this.firewall === check) this.firewall = undefined;
      if (statusFile) {
        throw new Error(
          `the host firewall that isolates proxies is not confirmed (${result.error}); ` +
            'it is installed and kept by the isolation-firewall service (docker-compose logs isolation-firewall), ' +
            "or set CTLL_FIREWALL=warn (DockerRuntime option firewall: 'warn') to run proxies without it, able to reach host services on 0.0.0.0",
        );
      }
      throw new Error(
        `the host firewall that isolates proxies could not be installed (${result.error}); ` +
          'run the server as root (iptables needs CAP_NET_ADMIN in the host network namespace), ' +
          "or set CTLL_FIREWALL=warn (DockerRuntime option firewall: 'warn') to run proxies without it, able to reach host services on 0.0.0.0",
      );
    });
    this.firewall = check;
    return check.done;
  }

  private async create(spec: Pick<ProxySpec, 'userHash' | 'secret'>, phases: PhaseClock, spareOf?: string): Promise<ProxyInstance> {
    const hash = spec.userHash;
    const subnet = await this.subnets.withSubnet(async (candidate) => {
      await this.docker.createNetwork(networkCreateOptions(hash, candidate, this.stack));
      return candidate;
    });
    phases.end('network');
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer(
        containerCreateOptions({
          userHash: hash,
          secret: spec.secret,
          image: this.image,
          subnet,
          limits: this.limits,
          ...(this.stack ? { stack: this.stack } : {}),
          ...(this.responseHeadTimeoutMs !== undefined ? { responseHeadTimeoutMs: this.responseHeadTimeoutMs } : {}),
          ...(this.maxConcurrentRequests !== undefined ? { maxConcurrentRequests: this.maxConcurrentRequests } : {}),
          ...(spareOf !== undefined ? { spareOf } : {}),
        }),
      );
    } catch (e) {
      if (statusOf(e) === 404 && /image/i.test(engineMessage(e))) {
        throw new Error(`${engineMessage(e)} (build it with scripts/build-proxy-image.sh)`, { cause: e });
      }
      throw e;
    }
    this.expectExit(container.id);

    // Attach before starting: the container is removed when it exits, and with it its logs.
    const tail = new OutputTail();
    // The engine answers with an HTTP response stream (it has destroy(); the typings say less).
    const attach = (await container.attach({ stream: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream & {
      destroy(): void;
    };
    this.docker.modem.demuxStream(attach, tail, tail);
    // Its errors (the engine going away) show up as the start failing; do not crash on them.
    attach.on('error', () => undefined);
    const stopWaiting = new AbortController();
    // Two signs of an early exit: the engine's wait answer (with the exit code), and, in case
    // the wait request reached the engine only after a very fast exit, the attach stream ending.
    const attachEnded = new Promise<string>((resolve) =>
      attach.on('end', () => void sleep(500).then(() => resolve('the container exited during start'))),
    );
    const waited = container.wait({ condition: 'next-exit', abortSignal: stopWaiting.signal }).then(
      async (r: { StatusCode?: number }) => {
        // The engine's `oom` event and the wait answer race; give the event a moment.
        await sleep(150);
        return `the container exited during start (${describeExit(r.StatusCode, this.oomAt.has(container.id))})`;
      },
      (e: unknown) =>
        stopWaiting.signal.aborted ? new Promise<string>(() => {}) : `the container ended during start (${engineMessage(e)})`,
    );
    const exited = Promise.race([waited, attachEnded]);
    // The proxy logs this line once its server listens (server/src/proxy/cli.ts).
    const listening = tail.seen('streaming proxy listening');
    const endpoint = proxyEndpoint(proxyAddress(subnet));
    phases.end('container');
    try {
      await container.start();
      phases.end('start');
      const createdAt = Date.now();
      await waitForHealth(`${endpoint}/health`, { timeoutMs: this.startTimeoutMs, exited, ready: listening });
      phases.end('boot');
      // From here on, a death is news for the manager.
      this.expectedExits.delete(container.id);
      if (spareOf === undefined) this.log.info('proxy started', { user: hash.slice(0, 12), endpoint, subnet, phasesMs: phases.ms });
      else this.log.info('spare proxy started', { spare: hash.slice(0, 12), endpoint, subnet, phasesMs: phases.ms });
      return {
        id: containerName(hash, this.stack),
        userHash: hash,
        endpoint,
        createdAt,
        secret: spec.secret,
        containerId: container.id,
        bridge: bridgeName(subnet),
        startPhases: phases.ms,
      };
    } catch (e) {
      // Give a crashing proxy's last words a moment to arrive through the attach stream.
      await Promise.race([exited, sleep(200)]);
      const lines = tail.lines();
      const output = lines.length ? `; its last output:\n  ${lines.join('\n  ')}` : '; it printed nothing';
      throw new Error(`${engineMessage(e)}${output}`, { cause: e });
    } finally {
      stopWaiting.abort();
      attach.destroy();
    }
  }

  /**
   * Starts making spares up to the `spares` option, in the background (spare-pool.ts). The
   * server calls it once its proxies are reconciled; every claim makes another.
   */
  fillSpares(): void {
    this.spares.fill();
  }

  /** Spares ready now (ctll_proxy_spares, and the tests). */
  get sparesReady(): number {
    return this.spares.count;
  }

  private async makeSpare(): Promise<Spare> {
    await this.ensureFirewall();
    const spareId = randomBytes(32).toString('hex') as UserHash;
    this.enter(spareId);
    try {
      await this.watcher.ready;
      const instance = await this.create({ userHash: spareId, secret: randomBytes(32).toString('base64url') }, new PhaseClock(), this.spareHolder);
      return { spareId, instance };
    } catch (e) {
      await this.removeUserObjects(spareId, false).catch(() => undefined);
      throw e;
    } finally {
      this.leave(spareId);
    }
  }

  /**
   * The user's proxy from the pool: a spare (or the one being made, spare-pool.ts takeSoon)
   * renamed to the user's container name (the name is what says whose it is; its network keeps
   * the spare's name), then asked once for its health.
   * A spare that fails either is removed and the next one tried; undefined when none is left.
   */
  private async claimSpare(userHash: UserHash, phases: PhaseClock): Promise<ProxyInstance | undefined> {
    let tried = false;
    for (let spare = await this.spares.takeSoon(); spare; spare = await this.spares.takeSoon()) {
      tried = true;
      const name = containerName(userHash, this.stack);
      try {
        await this.docker.getContainer(spare.instance.containerId!).rename({ name });
      } catch (e) {
        this.log.warn('a spare proxy could not be renamed; removing it', { spare: spare.spareId.slice(0, 12), error: engineMessage(e) });
        await this.removeUserObjects(spare.spareId, false).catch(() => undefined);
        continue;
      }
      try {
        await waitForHealth(`${spare.instance.endpoint}/health`, { timeoutMs: 1_000 });
      } catch (e) {
        this.log.warn('a spare proxy did not answer; removing it', { spare: spare.spareId.slice(0, 12), error: engineMessage(e) });
        await this.removeUserObjects(userHash, false).catch(() => undefined);
        continue;
      }
      phases.end('claim');
      this.joined.set(userHash, networkName(spare.spareId, this.stack));
      this.log.info('proxy started', { user: userHash.slice(0, 12), endpoint: spare.instance.endpoint, spare: spare.spareId.slice(0, 12), phasesMs: phases.ms });
      // Started for this user now, as far as anyone can tell: the status shows when it became theirs.
      return { ...spare.instance, id: name, userHash, createdAt: Date.now(), startPhases: phases.ms };
    }
    if (tried) phases.end('claim');
    return undefined;
  }

  async stop(userHash: string): Promise<void> {
    assertUserHash(userHash);
    this.enter(userHash);
    try {
      await this.removeUserObjects(userHash, true);
    } finally {
      this.leave(userHash);
    }
  }

  /**
   * Removes the user's container and network if they exist, whatever state they are in.
   * Removing the network is what frees its subnet (the allocator reads the engine).
   * `graceful`: SIGTERM first so the proxy can close its bridge connection cleanly (stop());
   * cleanup after a failed start and leftovers are killed at once, a hung proxy would only
   * make the caller wait the stop timeout.
   */
  private async removeUserObjects(userHash: string, graceful: boolean): Promise<void> {
    const info = await ignoring([404], () => this.docker.getContainer(containerName(userHash, this.stack)).inspect());
    // The name is this stack's, so the object should be too; never remove what is not ours.
    if (info && !inStack(info.Config.Labels, this.stack)) {
      throw new Error(`a container named ${containerName(userHash, this.stack)} exists but belongs to stack "${info.Config.Labels?.[LABEL_STACK] ?? '(none)'}"; remove it by hand`);
    }
    // A claimed spare's network keeps the spare's name; the container says which it joined, or
    // the claim did (the container may be gone already).
    const joined = info?.HostConfig.NetworkMode ?? this.joined.get(userHash as UserHash);
    if (info) {
      this.expectExit(info.Id);
      const container = this.docker.getContainer(info.Id);
      // Asked before stopping so it cannot miss the removal; 404 = already gone.
      const removed = ignoring([404], () => container.wait({ condition: 'removed' }));
      removed.catch(() => undefined);
      if (graceful && info.State.Running) {
        // 304 already stopped, 404 gone, 409 being removed (AutoRemove after an exit).
        await ignoring([304, 404, 409], () => container.stop({ t: this.stopTimeoutSeconds }));
      }
      await ignoring([404, 409], () => container.remove({ force: true }));
      await withTimeout(removed, 15_000, 'removing the proxy container').catch((e: unknown) =>
        this.log.warn('proxy container removal not confirmed', { user: userHash.slice(0, 12), error: engineMessage(e) }),
      );
    }
    await this.removeNetwork(networkName(userHash, this.stack));
    if (joined && joined !== networkName(userHash, this.stack) && namePattern('net', this.stack).test(joined)) await this.removeNetwork(joined);
    this.joined.delete(userHash as UserHash);
  }

  private async removeNetwork(name: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await ignoring([404], () => this.docker.getNetwork(name).remove());
        return;
      } catch (e) {
        // The engine may still be detaching the removed container's endpoint for a moment.
        if (attempt >= 30 || !/active endpoints/i.test(engineMessage(e))) throw e;
        await sleep(100);
      }
    }
  }

  async list(): Promise<ProxyInstance[]> {
    const containers = await this.docker.listContainers({ filters: { label: labelFilters('proxy', this.stack), status: ['running'] } });
    const found = await Promise.all(
      containers.map(async (summary): Promise<ProxyInstance | undefined> => {
        const owner = ownerOfName(summary.Names[0], this.stack);
        if (!owner || !inStack(summary.Labels, this.stack) || isUnclaimedSpare(summary.Names[0], summary.Labels, this.stack)) return undefined;
        // The summary lacks the environment (the secret), so inspect each one.
        const info = await ignoring([404], () => this.docker.getContainer(summary.Id).inspect());
        if (!info?.State.Running) return undefined;
        const joined = info.HostConfig.NetworkMode ?? networkName(owner, this.stack);
        if (joined !== networkName(owner, this.stack)) this.joined.set(owner, joined);
        const attached = info.NetworkSettings.Networks[joined];
        const ip = attached?.IPAddress;
        if (!ip) return undefined;
        const network = parseCidr(`${ip}/${attached.IPPrefixLen}`, { strict: false });
        const token = info.Config.Env?.find((e) => e.startsWith('PROXY_TOKEN='));
        return {
          id: info.Name.replace(/^\//, ''),
          userHash: owner,
          endpoint: proxyEndpoint(ip),
          createdAt: Date.parse(info.Created),
          containerId: info.Id,
          bridge: bridgeName(formatCidr(network)),
          ...(token ? { secret: token.slice('PROXY_TOKEN='.length) } : {}),
        };
      }),
    );
    return found.filter((p): p is ProxyInstance => p !== undefined);
  }

  /**
   * Removes what a crash leaves behind: labelled proxy containers that are not running and
   * labelled user networks with no container. Users with a start/stop in progress here are
   * skipped (their network exists a moment before their container does).
   */
  async pruneOrphans(): Promise<{ containers: number; networks: number }> {
    let containers = 0;
    let networks = 0;
    const all = await this.docker.listContainers({ all: true, filters: { label: labelFilters('proxy', this.stack) } });
    for (const summary of all) {
      const owner = ownerOfName(summary.Names[0], this.stack);
      if (!inStack(summary.Labels, this.stack)) continue;
      if (owner && this.busy.has(owner)) continue;
      // Running: a user's proxy, unless it is a spare an earlier run of this server made (its
      // pool went with it) and not one of ours now.
      const oldSpare =
        owner !== undefined && summary.Labels[LABEL_SPARE] === this.spareHolder && isUnclaimedSpare(summary.Names[0], summary.Labels, this.stack) && !this.spares.has(owner);
      if (summary.State === 'running' && !oldSpare) continue;
      this.expectExit(summary.Id);
      await ignoring([404, 409], () => this.docker.getContainer(summary.Id).remove({ force: true }));
      containers++;
    }
    const nets = await this.docker.listNetworks({ filters: { label: labelFilters('network', this.stack) } });
    for (const net of nets) {
      const owner = ownerOf(net.Labels);
      if (!inStack(net.Labels, this.stack)) continue;
      if (owner && this.busy.has(owner)) continue;
      // The list omits attached containers; inspect has them.
      const info = await ignoring([404], () => this.docker.getNetwork(net.Id).inspect() as Promise<Docker.NetworkInspectInfo>);
      if (!info || Object.keys(info.Containers ?? {}).length > 0) continue;
      try {
        await this.removeNetwork(net.Id);
        networks++;
      } catch (e) {
        this.log.warn('could not remove an orphaned network', { network: net.Name, error: engineMessage(e) });
      }
    }
    if (containers || networks) this.log.info('pruned orphans', { containers, networks });
    return { containers, networks };
  }

  async close(): Promise<void> {
    await this.spares.close();
    this.watcher.close();
  }

  private onEngineEvent(event: EngineEvent): void {
    if (event.Type !== 'container') return;
    const id = event.Actor.ID;
    if (event.Action === 'oom') {
      this.oomAt.set(id, Date.now());
      return;
    }
    if (event.Action !== 'die') return;
    // Expected (a stop, or a start that failed: start() reads oomAt itself, entries expire).
    if (this.expectedExits.has(id)) return;
    // The engine filter already asks for our stack; without one, others' stacks still come through.
    if (!inStack(event.Actor.Attributes, this.stack)) return;
    const owner = ownerOfName(event.Actor.Attributes['name'], this.stack) ?? ownerOf({ [LABEL_OWNER]: event.Actor.Attributes[LABEL_OWNER] ?? '' });
    if (!owner) return;
    // A spare no user has taken: nobody's news; it is replaced, and its network removed.
    const spare = this.spares.drop(owner);
    if (spare) {
      this.log.warn('a spare proxy exited; making another', { spare: owner.slice(0, 12) });
      void this.removeUserObjects(owner, false).catch(() => undefined);
      return;
    }
    const code = event.Actor.Attributes['exitCode'];
    const report = (): void => {
      const oom = Date.now() - (this.oomAt.get(id) ?? -Infinity) < 10_000;
      this.oomAt.delete(id);
      const reason = `the proxy container died (${describeExit(code === undefined ? undefined : Number(code), oom)})`;
      this.log.warn('proxy exited unexpectedly', { user: owner.slice(0, 12), reason });
      this.emit('exit', owner, reason);
    };
    // The engine usually reports `oom` before `die`, but both come from different sources; a
    // SIGKILL exit (137) without an OOM report yet gets a moment for it to arrive.
    if (code === '137' && !this.oomAt.has(id)) setTimeout(report, 250).unref();
    else report();
  }

  private expectExit(containerId: string): void {
    const now = Date.now();
    this.expectedExits.set(containerId, now);
    // Ids are never reused, and a die event arrives within seconds: forget old entries.
    for (const [id, at] of this.expectedExits) {
      if (now - at < 10 * 60_000) break;
      this.expectedExits.delete(id);
    }
    for (const [id, at] of this.oomAt) if (now - at > 60_000) this.oomAt.delete(id);
  }

  private enter(userHash: string): void {
    this.busy.set(userHash, (this.busy.get(userHash) ?? 0) + 1);
  }

  private leave(userHash: string): void {
    const n = (this.busy.get(userHash) ?? 1) - 1;
    if (n > 0) this.busy.set(userHash, n);
    else this.busy.delete(userHash);
  }
}

/** Times a start phase by phase: each end() closes the phase begun at the previous one. */
class PhaseClock {
  readonly ms: Partial<Record<StartPhase, number>> = {};
  private last = performance.now();

  end(phase: StartPhase): void {
    const now = performance.now();
    this.ms[phase] = Math.round((now - this.last) * 10) / 10;
    this.last = now;
  }
}
