/**
 * The bridges nginx joins straight to their proxies (docs/edge-routing.md, "the bridge"): the
 * api-backend holds no socket of them, so it keeps their books from each proxy's link events
 * (link-watch.ts), one watch per proxy that has had one, with what a spliced bridge gives it
 * (api-server.ts, onUpgrade): the manager's bridge count (idle cleanup, the status), the
 * `ctll_bridges_connected` gauge, and the audit's connect and disconnect lines.
 */
import type { AuditLog } from '../audit.js';
import type { ProxyManager, ProxyRecord } from '../manager/proxy-manager.js';
import type { UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { LinkWatch, type LinkWatchOptions } from './link-watch.js';
import type { ServerMetrics } from './server-metrics.js';

export class EdgeBridges {
  private readonly watches = new Map<UserHash, LinkWatch>();

  constructor(
    private readonly manager: ProxyManager,
    private readonly metrics: ServerMetrics,
    private readonly audit: AuditLog,
    private readonly options: LinkWatchOptions = {},
  ) {}

  /** Watches the proxy `record` of `user` (a bridge is being sent to it), unless already watched. */
  watch(user: UserHash, record: ProxyRecord): void {
    const endpoint = record.instance?.endpoint;
    if (endpoint === undefined) return;
    const old = this.watches.get(user);
    // The same proxy (a restarted one may get the same address, never the same secret).
    if (old?.target.endpoint === endpoint && old.target.secret === record.secret) return;
    // A watch of the user's previous proxy: that one is gone, and its tunnels with it.
    old?.end();
    const { manager, metrics, audit } = this;
    const watch: LinkWatch = new LinkWatch(
      { endpoint, secret: record.secret },
      {
        opened: (t) => {
          manager.bridgeOpened(user);
          metrics.bridgesConnected.inc();
          audit.record({ action: 'bridge.connect', result: 'ok', userHash: user, address: t.address, client: t.client, machine: t.machine });
        },
        closed: (t, replaced) => {
          manager.bridgeClosed(user);
          metrics.bridgesConnected.dec();
          audit.record({ action: 'bridge.disconnect', result: 'ok', userHash: user, address: t.address, machine: t.machine, ...(replaced ? { reason: 'replaced' } : {}) });
        },
        stillRunning: () => {
          const now = manager.record(user);
          return now?.state === 'running' && now.instance?.endpoint === endpoint && now.secret === record.secret;
        },
        ended: () => {
          if (this.watches.get(user) === watch) this.watches.delete(user);
        },
      },
      this.options,
    );
    this.watches.set(user, watch);
  }

  /**
   * Watches every proxy the manager runs now: at the api-backend's start, its proxies adopted
   * from a previous run may hold bridges nginx joined to them then, which outlived that run.
   */
  watchRunning(): void {
    for (const user of this.manager.users()) {
      const record = this.manager.record(user);
      if (record?.state === 'running') this.watch(user, record);
    }
  }

  /** Edge tunnels counted open for `user` (tests, and the status). */
  tunnels(user: UserHash): number {
    return this.watches.get(user)?.tunnels ?? 0;
  }

  /** The api-backend is stopping: the watches end without closing anything in the books. */
  close(): void {
    for (const w of this.watches.values()) w.stop();
    this.watches.clear();
  }
}
