/**
 * The streaming proxy manager: decides when each user's streaming proxy runs: starts it on demand (idempotently: concurrent
 * starts for one user share one start), checks its health, destroys it when idle, adopts or
 * removes what an earlier server process left behind, and notices proxies that die.
 *
 * Each method takes one kind of user key, named and typed: the raw user id (UserId: ensure, view,
 * stop, the API's calls for a signed-in user) or its hash (UserHash: everything the api-backend
 * counts per user), and the types keep the two apart.
 */
import { randomBytes } from 'node:crypto';
import type { ProxyStatus } from '@cloudtolocalllm/api-contract';
import type { AuditLog } from '../audit.js';
import { ServerError } from '../errors.js';
import type { ServerMetrics } from '../api/server-metrics.js';
import { silentLogger, type Logger } from '../log.js';
import { userHash as hashOf, type UserHash, type UserId } from '@cloudtolocalllm/proxy-spec/user-hash';
import type { ProxyInstance, ProxyRuntime } from '../runtime/runtime.js';
import { checkProxyHealth } from './proxy-health.js';

export interface ProxyManagerOptions {
  runtime: ProxyRuntime;
  metrics: ServerMetrics;
  audit: AuditLog;
  log?: Logger;
  /** How often each proxy's /health is checked (the original design: 30 s). */
  healthIntervalMs?: number;
  /** A proxy with no bridge and no request for this long is destroyed (10 min). */
  idleTimeoutMs?: number;
  /** How often idle proxies are looked for (60 s). */
  sweepIntervalMs?: number;
  /** Failed health checks in a row before a proxy is replaced. */
  unhealthyAfter?: number;
  /** Proxies this server runs at most, all users together (CTLL_MAX_PROXIES; default no cap). */
  maxProxies?: number;
  /** Starts per user in any minute (CTLL_PROXY_STARTS_PER_MINUTE; default no limit). */
  startsPerMinute?: number;
}

/** How often proxies are checked and swept, and how long an idle one lives (config.ts's defaults). */
export const DEFAULT_MANAGER_TIMING = { healthIntervalMs: 30_000, idleTimeoutMs: 600_000, sweepIntervalMs: 60_000 } as const;

/** A start refused by a limit: its code (and so the status) and Retry-After the API answers with. */
export class ProxyStartRefused extends ServerError {
  constructor(
    readonly limit: 'proxies' | 'proxy-starts',
    message: string,
    retryAfterSec: number,
  ) {
    super(limit === 'proxies' ? 'proxy-limit' : 'proxy-start-rate', message, retryAfterSec);
    this.name = 'ProxyStartRefused';
  }
}

export type ProxyState = 'starting' | 'running' | 'stopping';

/**
 * Why a proxy stopped (ctll_proxy_stops_total): its user asked, it was idle, it died on its own,
 * it was replaced after failing its health checks, the server shut down, or an earlier server left it.
 */
export type StopReason = 'user' | 'idle' | 'died' | 'replaced' | 'shutdown' | 'reconcile';

export interface ProxyRecord {
  userHash: UserHash;
  state: ProxyState;
  instance?: ProxyInstance;
  secret: string;
  createdAt: number;
  lastActivity: number;
  /** Bridges connected through this server right now. */
  bridges: number;
  /** Ollama requests in flight through this server right now. */
  inflight: number;
  health: { ok: boolean; checkedAt: number; error?: string; bridgeConnected?: boolean; activeStreams?: number };
  failedChecks: number;
}

export class ProxyManager {
  private readonly records = new Map<UserHash, ProxyRecord>();
  private readonly starting = new Map<UserHash, Promise<ProxyRecord>>();
  /** Removals under way: a new start for the same user waits for them (same names, same subnet). */
  private readonly stopping = new Map<UserHash, Promise<unknown>>();
  private readonly log: Logger;
  /** When each user's proxy was last started, within the last minute. */
  private readonly recentStarts = new Map<UserHash, number[]>();
  private timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(private readonly options: ProxyManagerOptions) {
    this.log = options.log ?? silentLogger;
    options.runtime.on('exit', (userHash, reason) => this.onExit(userHash, reason));
    if (options.maxProxies !== undefined) options.metrics.proxiesMax.set(options.maxProxies);
  }

  get runtimeKind(): 'docker' | 'process' {
    return this.options.runtime.kind;
  }

  get size(): number {
    return this.records.size;
  }

  /** Starts the periodic health checks and idle sweeps. */
  startTimers(): void {
    const health = setInterval(() => void this.checkAll(), this.options.healthIntervalMs ?? DEFAULT_MANAGER_TIMING.healthIntervalMs);
    const sweep = setInterval(() => void this.sweepIdle(), this.options.sweepIntervalMs ?? DEFAULT_MANAGER_TIMING.sweepIntervalMs);
    health.unref();
    sweep.unref();
    this.timers.push(health, sweep);
  }

  record(userHash: UserHash): ProxyRecord | undefined {
    return this.records.get(userHash);
  }

  /** The user's running proxy, started if needed. Resolves only once it is healthy. */
  async ensure<T extends string>(userId: UserId<T>): Promise<ProxyRecord> {
    const userHash = hashOf(userId);
    const existing = this.records.get(userHash);
    if (existing?.state === 'running') return existing;
    const pending = this.starting.get(userHash);
    if (pending) return pending;
    const refusal = this.admit(userHash);
    if (refusal) {
      this.options.metrics.limitRefusals.inc({ limit: refusal.limit });
      throw refusal;
    }
    const removal = this.stopping.get(userHash);
    const start = (async () => {
      await removal?.catch(() => undefined);
      return this.start(userId, userHash);
    })().finally(() => this.starting.delete(userHash));
    this.starting.set(userHash, start);
    return start;
  }

  /**
   * The server-wide cap and the per-user start rate: a proxy costs a container, a network and
   * kernel table entries, and a user whose proxy keeps dying (or who keeps stopping it) must not
   * churn the engine.
   */
  private admit(userHash: UserHash, now = Date.now()): ProxyStartRefused | undefined {
    const { maxProxies, startsPerMinute } = this.options;
    if (maxProxies !== undefined && this.records.size >= maxProxies) {
      return new ProxyStartRefused('proxies', `this server already runs its maximum of ${maxProxies} proxies (CTLL_MAX_PROXIES); try again in a few minutes`, 60);
    }
    if (startsPerMinute === undefined) return undefined;
    const recent = (this.recentStarts.get(userHash) ?? []).filter((t) => now - t < 60_000);
    if (recent.length >= startsPerMinute) {
      const retryAfterSec = Math.max(1, Math.ceil((recent[0]! + 60_000 - now) / 1000));
      this.recentStarts.set(userHash, recent);
      return new ProxyStartRefused('proxy-starts', `your proxy was started ${recent.length} times in the last minute (limit ${startsPerMinute}); retry in ${retryAfterSec} s`, retryAfterSec);
    }
    recent.push(now);
    this.recentStarts.set(userHash, recent);
    if (this.recentStarts.size > 10_000) {
      for (const [u, times] of this.recentStarts) if (times.every((t) => now - t >= 60_000)) this.recentStarts.delete(u);
    }
    return undefined;
  }

  private async start(userId: string, userHash: UserHash): Promise<ProxyRecord> {
    if (this.closed) throw new Error('the server is shutting down');
    const began = Date.now();
    const secret = randomBytes(32).toString('base64url');
    const record: ProxyRecord = {
      userHash,
      state: 'starting',
      secret,
      createdAt: began,
      lastActivity: began,
      bridges: 0,
      inflight: 0,
      health: { ok: false, checkedAt: began },
      failedChecks: 0,
    };
    this.records.set(userHash, record);
    try {
      const instance = await this.options.runtime.start({ userId, userHash, secret });
      record.instance = instance;
      // A spare from the pool has the secret it was made with, not the one minted above.
      if (instance.secret) record.secret = instance.secret;
      record.createdAt = instance.createdAt;
      record.state = 'running';
      record.health = { ok: true, checkedAt: Date.now() };
      const seconds = (Date.now() - began) / 1000;
      this.options.metrics.provisioningSeconds.observe(seconds);
      for (const [phase, ms] of Object.entries(instance.startPhases ?? {})) this.options.metrics.startPhaseSeconds.observe({ phase }, ms / 1000);
      this.options.metrics.proxyStarts.inc({ result: 'ok' });
      this.options.metrics.proxiesRunning.set(this.runningCount());
      this.options.audit.record({ action: 'proxy.start', result: 'ok', userHash, durationMs: Date.now() - began });
      this.log.info('proxy started', { user: userHash.slice(0, 12), id: instance.id, ms: Date.now() - began });
      return record;
    } catch (e) {
      if (this.records.get(userHash) === record) this.records.delete(userHash);
      this.options.metrics.proxyStarts.inc({ result: 'error' });
      const message = e instanceof Error ? e.message : String(e);
      this.options.audit.record({ action: 'proxy.start', result: 'error', userHash, durationMs: Date.now() - began, reason: message.slice(0, 200) });
      this.log.error('proxy start failed', { user: userHash.slice(0, 12), error: message });
      throw new ServerError('proxy-start-failed', `your proxy could not be started: ${message}`, 10);
    }
  }

  /** Stops the user's proxy, if any. */
  async stop<T extends string>(userId: UserId<T>): Promise<boolean> {
    return this.stopHash(hashOf(userId), 'user');
  }

  private async stopHash(userHash: UserHash, reason: Exclude<StopReason, 'died' | 'reconcile'>): Promise<boolean> {
    await this.starting.get(userHash)?.catch(() => undefined);
    const record = this.records.get(userHash);
    if (!record || record.state === 'stopping') return false;
    record.state = 'stopping';
    const began = Date.now();
    const removal = this.options.runtime.stop(userHash);
    this.stopping.set(userHash, removal);
    try {
      await removal;
      this.options.audit.record({ action: reason === 'idle' ? 'proxy.idle' : 'proxy.stop', result: 'ok', userHash, durationMs: Date.now() - began, reason });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.options.audit.record({ action: 'proxy.stop', result: 'error', userHash, durationMs: Date.now() - began, reason: message.slice(0, 200) });
      this.log.error('proxy stop failed', { user: userHash.slice(0, 12), error: message });
    } finally {
      if (this.stopping.get(userHash) === removal) this.stopping.delete(userHash);
      if (this.records.get(userHash) === record) this.records.delete(userHash);
      this.options.metrics.proxyStops.inc({ reason });
      this.options.metrics.proxyStopSeconds.observe({ reason }, (Date.now() - began) / 1000);
      this.options.metrics.proxiesRunning.set(this.runningCount());
      this.options.metrics.proxiesUnhealthy.set(this.unhealthyCount());
    }
    return true;
  }

  /** Status as the API shows it. */
  view<T extends string>(userId: UserId<T>): ProxyStatus {
    const r = this.records.get(hashOf(userId));
    if (!r) {
      return { status: 'stopped', proxyId: null, createdAt: null, lastActivity: null, health: null, bridgeConnected: false, runtime: this.runtimeKind, computers: [] };
    }
    return {
      status: r.state,
      proxyId: r.instance?.id ?? null,
      createdAt: new Date(r.createdAt).toISOString(),
      lastActivity: new Date(r.lastActivity).toISOString(),
      health: { ok: r.health.ok, checkedAt: new Date(r.health.checkedAt).toISOString(), ...(r.health.error ? { error: r.health.error } : {}) },
      bridgeConnected: r.bridges > 0,
      runtime: this.runtimeKind,
      // Filled in by the api-backend's /api/proxy/status, which asks the proxy (proxy-computers.ts).
      computers: [],
    };
  }

  /** Every request and bridge frame counts as activity. */
  touch(userHash: UserHash): void {
    const r = this.records.get(userHash);
    if (r) r.lastActivity = Date.now();
  }

  bridgeOpened(userHash: UserHash): void {
    this.count(userHash, 'bridges', 1);
  }

  bridgeClosed(userHash: UserHash): void {
    this.count(userHash, 'bridges', -1);
  }

  requestStarted(userHash: UserHash): void {
    this.count(userHash, 'inflight', 1);
  }

  requestEnded(userHash: UserHash): void {
    this.count(userHash, 'inflight', -1);
  }

  /** A bridge or a request more or less for the user's proxy, which is activity too. */
  private count(userHash: UserHash, what: 'bridges' | 'inflight', by: 1 | -1): void {
    const r = this.records.get(userHash);
    if (!r) return;
    r[what] = Math.max(0, r[what] + by);
    r.lastActivity = Date.now();
  }

  /** One round of health checks; a proxy failing `unhealthyAfter` in a row is removed. */
  async checkAll(): Promise<void> {
    try {
      await this.checkEach();
    } finally {
      this.options.metrics.proxiesUnhealthy.set(this.unhealthyCount());
    }
  }

  private async checkEach(): Promise<void> {
    await Promise.all(
      [...this.records.values()]
        .filter((r) => r.state === 'running' && r.instance)
        .map(async (r) => {
          const result = await checkProxyHealth(r.instance!.endpoint);
          if (this.records.get(r.userHash) !== r) return;
          if (result.ok) {
            r.failedChecks = 0;
            r.health = {
              ok: true,
              checkedAt: Date.now(),
              bridgeConnected: result.health.bridgeConnected,
              activeStreams: result.health.activeStreams,
            };
            const reported = Date.parse(result.health.lastActivity);
            if (Number.isFinite(reported) && reported > r.lastActivity) r.lastActivity = reported;
          } else {
            r.failedChecks += 1;
            this.options.metrics.healthFailures.inc();
            r.health = { ok: false, checkedAt: Date.now(), error: result.error };
            this.log.warn('proxy health check failed', { user: r.userHash.slice(0, 12), error: result.error, inARow: r.failedChecks });
            if (r.failedChecks >= (this.options.unhealthyAfter ?? 3)) {
              this.options.audit.record({ action: 'proxy.unhealthy', result: 'error', userHash: r.userHash, reason: result.error.slice(0, 200) });
              await this.stopHash(r.userHash, 'replaced');
            }
          }
        }),
    );
  }

  /** Destroys proxies that have had no bridge and no request for the idle timeout. */
  async sweepIdle(now = Date.now()): Promise<number> {
    const idleFor = this.options.idleTimeoutMs ?? DEFAULT_MANAGER_TIMING.idleTimeoutMs;
    const idle = [...this.records.values()].filter(
      (r) => r.state === 'running' && r.bridges === 0 && r.inflight === 0 && now - r.lastActivity >= idleFor,
    );
    for (const r of idle) {
      this.log.info('proxy idle: destroying it', { user: r.userHash.slice(0, 12), idleMs: now - r.lastActivity });
      await this.stopHash(r.userHash, 'idle');
    }
    return idle.length;
  }

  /**
   * Reconciles with the runtime after a (re)start: adopts healthy proxies whose secret can be
   * read back, removes the rest, then prunes what a crash left behind.
   */
  async reconcile(): Promise<{ adopted: number; removed: number; pruned: { containers: number; networks: number } }> {
    let adopted = 0;
    let removed = 0;
    for (const instance of await this.options.runtime.list()) {
      const health = instance.secret ? await checkProxyHealth(instance.endpoint) : ({ ok: false, error: 'its secret is unknown' } as const);
      if (health.ok && instance.secret) {
        const now = Date.now();
        const reported = Date.parse(health.health.lastActivity);
        this.records.set(instance.userHash, {
          userHash: instance.userHash,
          state: 'running',
          instance,
          secret: instance.secret,
          createdAt: instance.createdAt,
          lastActivity: Number.isFinite(reported) ? reported : now,
          bridges: 0,
          inflight: 0,
          health: { ok: true, checkedAt: now, bridgeConnected: health.health.bridgeConnected },
          failedChecks: 0,
        });
        adopted += 1;
        this.options.audit.record({ action: 'proxy.adopt', result: 'ok', userHash: instance.userHash });
      } else {
        const began = Date.now();
        await this.options.runtime.stop(instance.userHash);
        this.options.metrics.proxyStopSeconds.observe({ reason: 'reconcile' }, (Date.now() - began) / 1000);
        removed += 1;
        this.options.metrics.proxyStops.inc({ reason: 'reconcile' });
        this.options.audit.record({ action: 'proxy.remove', result: 'ok', userHash: instance.userHash, reason: health.ok ? 'no-secret' : 'unhealthy' });
      }
    }
    const pruned = await this.options.runtime.pruneOrphans();
    this.options.metrics.proxiesRunning.set(this.runningCount());
    this.log.info('reconciled with the runtime', { adopted, removed, ...pruned });
    return { adopted, removed, pruned };
  }

  /** Stops timers and, unless told to keep them, every proxy. */
  async close(options: { keepProxies?: boolean } = {}): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.allSettled([...this.starting.values()]);
    // Removals under way (a proxy that died is being cleaned up) finish before the process may exit.
    await Promise.allSettled([...this.stopping.values()]);
    if (!options.keepProxies) {
      await Promise.all([...this.records.keys()].map((h) => this.stopHash(h, 'shutdown')));
      // Whatever happened to the proxies (a removal that failed, a death cleaned up half-way),
      // nothing of this stack outlives it: issue 13, finding 7.
      await this.options.runtime.pruneOrphans().catch((e: unknown) =>
        this.log.error('could not remove what is left of the proxies', { error: e instanceof Error ? e.message : String(e) }),
      );
    }
    await this.options.runtime.close();
  }

  private onExit(userHash: UserHash, reason: string): void {
    const r = this.records.get(userHash);
    if (!r || r.state === 'stopping') return;
    this.records.delete(userHash);
    this.options.metrics.proxyStops.inc({ reason: 'died' });
    this.options.metrics.proxiesRunning.set(this.runningCount());
    this.options.audit.record({ action: 'proxy.exit', result: 'error', userHash, reason: reason.slice(0, 200) });
    this.log.warn('proxy exited on its own', { user: userHash.slice(0, 12), reason });
    // Clean up its network and leftovers; the next start waits for this, then recovers.
    const began = Date.now();
    const removal = this.options.runtime
      .stop(userHash)
      .catch(() => undefined)
      .finally(() => this.options.metrics.proxyStopSeconds.observe({ reason: 'died' }, (Date.now() - began) / 1000));
    this.stopping.set(userHash, removal);
    void removal.finally(() => {
      if (this.stopping.get(userHash) === removal) this.stopping.delete(userHash);
    });
  }

  /** The users with a proxy record here (running, starting or failing), for the cluster's placements. */
  users(): UserHash[] {
    return [...this.records.keys()];
  }

  /** The running proxies' containers, for their resource use (proxy-resources.ts). */
  containers(): Array<{ userHash: UserHash; containerId: string }> {
    const out: Array<{ userHash: UserHash; containerId: string }> = [];
    for (const r of this.records.values()) if (r.state === 'running' && r.instance?.containerId) out.push({ userHash: r.userHash, containerId: r.instance.containerId });
    return out;
  }

  /** Each running proxy's network bridge and its user, for the firewall's refusals per user. */
  bridges(): Map<string, UserHash> {
    const out = new Map<string, UserHash>();
    for (const r of this.records.values()) if (r.instance?.bridge) out.set(r.instance.bridge, r.userHash);
    return out;
  }

  private unhealthyCount(): number {
    let n = 0;
    for (const r of this.records.values()) if (r.state === 'running' && !r.health.ok) n += 1;
    return n;
  }

  private runningCount(): number {
    let n = 0;
    for (const r of this.records.values()) if (r.state === 'running') n += 1;
    return n;
  }
}
