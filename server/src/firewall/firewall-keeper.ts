/**
 * Keeps the isolation firewall (isolation-firewall.ts) in place and says so: the small
 * privileged part of the deployment (the `isolation-firewall` service: host network, NET_ADMIN
 * and NET_RAW, nothing else), so the api-backend needs no privilege at all. It installs the rules
 * at start and checks them again every interval, since a Docker restart rebuilds DOCKER-USER and
 * an operator's `iptables -F` removes them; after each check it writes the outcome to the status
 * file (firewall-status.ts) that the api-backend reads before it starts a proxy.
 */
import { EventEmitter } from 'node:events';
import { silentLogger, type Logger } from '../log.js';
import { writeFirewallStatus, type FirewallStatus } from './firewall-status.js';
import { ensureIsolationFirewall, type FirewallResult } from './isolation-firewall.js';
import { syncAndReadCounters, type FirewallCounters } from './firewall-counters.js';

export interface KeeperOptions {
  /** Where the status goes (a volume shared read-only with the api-backend). */
  statusFile: string;
  /** Between two checks (CTLL_FIREWALL_INTERVAL_MS). */
  intervalMs: number;
  log?: Logger;
  /** Installs or confirms the rules; only tests replace it. */
  ensure?: (log: Logger) => Promise<FirewallResult>;
  /** Reads the refusal counters after each successful check; only tests replace it. */
  counters?: () => Promise<FirewallCounters>;
}

/** A status stays believable for this many intervals: one late check is no outage. */
export const VALID_FOR_INTERVALS = 3;

export class FirewallKeeper extends EventEmitter<{ checked: [FirewallStatus] }> {
  private readonly log: Logger;
  private readonly ensure: (log: Logger) => Promise<FirewallResult>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private lastOk: boolean | undefined;
  private countersFailing = false;

  constructor(private readonly options: KeeperOptions) {
    super();
    if (!Number.isInteger(options.intervalMs) || options.intervalMs < 100) throw new Error(`the keeper's interval must be a whole number of milliseconds, at least 100 (got ${options.intervalMs})`);
    this.log = (options.log ?? silentLogger).child({ component: 'isolation-firewall' });
    this.ensure = options.ensure ?? ensureIsolationFirewall;
  }

  /** Checks now and then every interval, until stop(). */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = this.check();
  }

  /** No further check; resolves once a check under way has written its status. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private async check(): Promise<void> {
    let result: FirewallResult;
    try {
      result = await this.ensure(this.log);
    } catch (e) {
      result = { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    let counters: FirewallCounters | undefined;
    if (result.ok) {
      try {
        counters = await (this.options.counters ?? syncAndReadCounters)();
        this.countersFailing = false;
      } catch (e) {
        // The rules are in place all the same: say once that their counts are missing.
        if (!this.countersFailing) this.log.warn('the firewall refusal counters cannot be read', { error: (e as Error).message });
        this.countersFailing = true;
      }
    }
    let status: FirewallStatus;
    try {
      status = writeFirewallStatus(this.options.statusFile, result, VALID_FOR_INTERVALS * this.options.intervalMs, Date.now(), counters);
    } catch (e) {
      // Without its status the api-backend refuses proxies when the old one goes stale: say why.
      this.log.error('the status file cannot be written', { file: this.options.statusFile, error: (e as Error).message });
      this.schedule();
      return;
    }
    if (status.ok !== this.lastOk) {
      if (status.ok) this.log.info('isolation firewall in place', { file: this.options.statusFile, intervalMs: this.options.intervalMs });
      else this.log.error('isolation firewall NOT in place: the api-backend starts no proxy until it is', { error: status.error });
      this.lastOk = status.ok;
    }
    this.emit('checked', status);
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.check();
    }, this.options.intervalMs);
  }
}
