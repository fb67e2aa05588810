/**
 * The user's connected computers (issue 10): one BridgeLink per computer name, each with its
 * client-key set and its model catalog. A bridge naming a computer that is connected replaces
 * that computer's link (a restart: both told why, as before); another name joins, up to the
 * user's limit. The catalogs are read only while two or more computers are connected: with
 * one, every request goes to it, and it is asked nothing a client did not ask.
 */
import { EventEmitter } from 'node:events';
import type { HeartbeatOptions } from '@cloudtolocalllm/bridge/connection/heartbeat';
import type { Logger } from '../log.js';
import { BridgeLink, type BridgeWire, type TunnelInfo, type TunnelTerms } from './bridge-link.js';
import { KeySet } from './key-set.js';
import { ModelCatalog } from './model-catalog.js';

/** How often the catalogs are read again while several computers are connected. */
export const CATALOG_REFRESH_MS = 30_000;

export interface Computer {
  readonly name: string;
  readonly link: BridgeLink;
  /** The client keys this computer's bridge sent (verifiers only). */
  readonly keySet: KeySet;
  readonly catalog: ModelCatalog;
}

export interface BridgeLinksEvents {
  connected: [name: string];
  disconnected: [name: string, reason: string];
  /** A tunnel opened or closed, with its computer's name (the api-backend's link watch). */
  tunnel: [change: TunnelChange];
  activity: [];
}

export type TunnelChange = { event: 'open'; machine: string; tunnel: TunnelInfo } | { event: 'close'; machine: string; tunnel: TunnelInfo; replaced: boolean };

export class BridgeLinks extends EventEmitter<BridgeLinksEvents> {
  private readonly computers = new Map<string, Computer>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly heartbeat: HeartbeatOptions,
    private readonly log: Logger,
    refreshMs = CATALOG_REFRESH_MS,
  ) {
    super();
    this.timer = setInterval(() => {
      if (this.list().length > 1) for (const c of this.list()) void c.catalog.refresh();
    }, refreshMs);
    this.timer.unref();
  }

  /** Connected computers, by name. */
  list(): Computer[] {
    return [...this.computers.values()].filter((c) => c.link.connected).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  names(): string[] {
    return this.list().map((c) => c.name);
  }

  get(name: string): Computer | undefined {
    const c = this.computers.get(name);
    return c?.link.connected ? c : undefined;
  }

  /** Any computer is connected. */
  get connected(): boolean {
    return this.list().length > 0;
  }

  /** Since when a computer has been connected without a break (the earliest of them). */
  get connectedSince(): number | undefined {
    const times = this.list().map((c) => c.link.connectedSince ?? Infinity);
    return times.length ? Math.min(...times) : undefined;
  }

  /** Why a bridge naming `name` cannot join now (the user's limit), or undefined when it may. */
  refusal(name: string, max: number): string | undefined {
    if (this.get(name)) return undefined;
    const names = this.names();
    if (names.length < max) return undefined;
    return `too many computers: ${names.length} are connected for this account (${names.join(', ')}; limit ${max}); disconnect one, or connect under one of these names to replace it`;
  }

  attach(wire: BridgeWire, id: string, terms: TunnelTerms, name: string): void {
    let computer = this.computers.get(name);
    if (!computer) {
      const link = new BridgeLink(name, this.heartbeat, this.log);
      computer = { name, link, keySet: new KeySet(link, this.log), catalog: new ModelCatalog(link) };
      this.computers.set(name, computer);
      const joined = computer;
      link.on('activity', () => this.emit('activity'));
      link.on('connected', () => {
        const tunnel = link.tunnel;
        if (tunnel) this.emit('tunnel', { event: 'open', machine: name, tunnel });
        this.emit('connected', name);
        this.readCatalogs();
      });
      link.on('disconnected', (reason, tunnel, replaced) => {
        this.emit('tunnel', { event: 'close', machine: name, tunnel, replaced });
        // A replacement drops the old connection inside attach(), just before the new one is
        // taken: whether the computer left is known once attach() is done.
        queueMicrotask(() => {
          if (joined.link.connected || this.computers.get(name) !== joined) return;
          this.computers.delete(name);
          joined.keySet.close();
        });
        this.emit('disconnected', name, reason);
      });
    }
    computer.link.attach(wire, id, terms);
  }

  /** Extends the deadline of the tunnel named `id`, whichever computer holds it. */
  renew(id: string, expiresAt: number): number | undefined {
    for (const c of this.computers.values()) {
      const deadline = c.link.renew(id, expiresAt);
      if (deadline !== undefined) return deadline;
    }
    return undefined;
  }

  /** The earliest deadline of the open tunnels, for /health and tests. */
  get expiresAt(): number | undefined {
    const times = this.list().flatMap((c) => (c.link.expiresAt === undefined ? [] : [c.link.expiresAt]));
    return times.length ? Math.min(...times) : undefined;
  }

  /** Closes every computer's link (the proxy is stopping, or a test drops them). */
  close(reason?: string): void {
    for (const c of [...this.computers.values()]) c.link.close(reason);
  }

  /** The proxy is stopping: the links and the refresh timer. */
  stop(): void {
    clearInterval(this.timer);
    for (const c of [...this.computers.values()]) c.keySet.close();
    this.close();
  }

  /**
   * Reads the catalogs once two or more computers are connected: all of them when the second
   * joins (the first one's may be from long ago, or never read), else those not yet read.
   */
  private readCatalogs(): void {
    const list = this.list();
    if (list.length < 2) return;
    for (const c of list) if (list.length === 2 || !c.catalog.known) void c.catalog.refresh();
  }
}
