/**
 * The live api-backends of the stack. On a Swarm, the engine already knows them: the DNS name
 * `tasks.<service>` answers one A record per running task of the service (global mode: one per
 * node), so membership is that answer, asked again every interval; no protocol of our own. A
 * static list (CTLL_CLUSTER_MEMBERS) serves tests and deployments without Swarm's DNS.
 *
 * A member is `host:port`, the address of its peer listener. A failed or empty lookup keeps the
 * last members rather than dropping to none: a resolver hiccup must not move every user.
 */
import { EventEmitter } from 'node:events';
import { Resolver } from 'node:dns/promises';
import type { Member } from './owner-map.js';

/** How often `tasks.<service>` is asked again unless told otherwise. */
export const DEFAULT_MEMBERSHIP_INTERVAL_MS = 5_000;

/** What membership needs of a resolver: node:dns's Resolver, or one pointed at a test server. */
export interface A4Resolver {
  resolve4(name: string): Promise<string[]>;
}

export type MembershipSource =
  | { kind: 'static'; members: readonly Member[] }
  | { kind: 'dns'; service: string; port: number; intervalMs?: number; resolver?: A4Resolver; servers?: string[] };

export interface MembershipEvents {
  change: [members: readonly Member[], previous: readonly Member[]];
  /** A lookup failed; the members stay as they were. */
  error: [error: Error];
}

const sameMembers = (a: readonly Member[], b: readonly Member[]): boolean => a.length === b.length && a.every((m, i) => m === b[i]);

/** `host:port` with a port of 1-65535 and a host without spaces or slashes. */
export function checkMember(value: string): string | undefined {
  const m = /^(\[[0-9a-f:]+\]|[^\s/:[\]]+):(\d{1,5})$/i.exec(value);
  if (!m) return 'is not host:port';
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `has port ${port}, outside 1-65535`;
  return undefined;
}

export class Membership extends EventEmitter<MembershipEvents> {
  private current: readonly Member[];
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly source: MembershipSource) {
    super();
    if (source.kind === 'static') {
      for (const m of source.members) {
        const problem = checkMember(m);
        if (problem) throw new RangeError(`cluster member "${m}" ${problem}`);
      }
    }
    this.current = source.kind === 'static' ? [...new Set(source.members)].sort() : [];
  }

  /** The live members, sorted (every node then sees the same list). */
  get members(): readonly Member[] {
    return this.current;
  }

  /** Replaces a static list (an operator's reload, tests removing a member); emits `change`. */
  setStatic(members: readonly Member[]): void {
    if (this.source.kind !== 'static') throw new Error('the members come from DNS here; setStatic applies to a static list only');
    for (const m of members) {
      const problem = checkMember(m);
      if (problem) throw new RangeError(`cluster member "${m}" ${problem}`);
    }
    this.update([...new Set(members)].sort());
  }

  /** Resolves once, then keeps resolving every interval (DNS); a static list needs nothing. */
  async start(): Promise<void> {
    if (this.source.kind === 'static') return;
    await this.refresh();
    const interval = this.source.intervalMs ?? DEFAULT_MEMBERSHIP_INTERVAL_MS;
    this.timer = setInterval(() => void this.refresh(), interval);
    this.timer.unref();
  }

  /** Asks `tasks.<service>` now; concurrent calls share one lookup. */
  refresh(): Promise<void> {
    if (this.source.kind === 'static' || this.closed) return Promise.resolve();
    this.inFlight ??= this.lookup().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.removeAllListeners();
  }

  private async lookup(): Promise<void> {
    if (this.source.kind !== 'dns') return;
    const { service, port } = this.source;
    const resolver = this.source.resolver ?? this.defaultResolver();
    let addresses: string[];
    try {
      addresses = await resolver.resolve4(`tasks.${service}`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      if (!this.closed) this.emit('error', new Error(`cannot resolve tasks.${service} (${code}); keeping the ${this.current.length} members known`));
      return;
    }
    if (this.closed || addresses.length === 0) return;
    this.update([...new Set(addresses.map((a) => `${a}:${port}`))].sort());
  }

  private resolver: Resolver | undefined;
  private defaultResolver(): A4Resolver {
    if (!this.resolver) {
      this.resolver = new Resolver({ timeout: 2_000, tries: 2 });
      if (this.source.kind === 'dns' && this.source.servers) this.resolver.setServers(this.source.servers);
    }
    return this.resolver;
  }

  private update(next: readonly Member[]): void {
    if (sameMembers(next, this.current)) return;
    const previous = this.current;
    this.current = next;
    this.emit('change', next, previous);
  }
}
