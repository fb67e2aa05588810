/**
 * This api-backend as one member of several (docs/scaling.md): who owns a user (owner-map.ts,
 * over membership.ts's live members), the peer listener other members reach it on (mutual TLS,
 * peer-tls.ts), and the gateway's cluster hooks (api-server.ts's ClusterHooks): the identity a
 * peer vouches for, and the hop to the owner (peer-forward.ts).
 *
 * The identity headers (x-cloudtolocalllm-cluster-*) are believed only on a connection to the
 * peer listener that presented a certificate of the stack's CA; the public listener refuses a
 * request that carries any of them ('peer-only'), so a client cannot claim to be anyone.
 */
import { EventEmitter } from 'node:events';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ApiServer, ClusterHooks, PeerIdentity } from '../api/api-server.js';
import type { BridgeSplice, SpliceEvents } from '../api/bridge-forward.js';
import { closeNow, trackSockets } from '../http-lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import type { Membership } from './membership.js';
import { ownerOf, type Member } from './owner-map.js';
import { forwardRequestToPeer, forwardUpgradeToPeer } from './peer-forward.js';
import { isAuthenticatedPeer, type PeerTls } from './peer-tls.js';

export const CLUSTER_HEADER_PREFIX = 'x-cloudtolocalllm-cluster-';
/** The verified token's subject, percent-encoded (a `sub` may hold any character). */
export const CLUSTER_SUBJECT_HEADER = `${CLUSTER_HEADER_PREFIX}subject`;
/** The token's expiry, seconds since the epoch. */
export const CLUSTER_EXPIRES_HEADER = `${CLUSTER_HEADER_PREFIX}expires`;
/** The client's address as the first api-backend saw it (audit, per-address limits). */
export const CLUSTER_ADDRESS_HEADER = `${CLUSTER_HEADER_PREFIX}address`;

export interface ClusterNodeOptions {
  membership: Membership;
  tls: PeerTls;
  /** This node's member address; undefined: found among the members by this host's own addresses. */
  self?: Member;
  /** Where the peer listener binds. */
  listen: { host: string; port: number };
  log?: Logger;
  /** The server's metrics registry: the cluster's own series go beside the others on /metrics. */
  registry?: Registry;
}

export interface ClusterNodeEvents {
  /** The members changed; `moved` counts this node's bridges cut because their owner moved. */
  change: [members: readonly Member[], moved: number];
}

const localAddresses = (): Set<string> =>
  new Set(
    Object.values(networkInterfaces())
      .flat()
      .map((i) => i?.address)
      .filter((a): a is string => a !== undefined),
  );

export class ClusterNode extends EventEmitter<ClusterNodeEvents> implements ClusterHooks {
  readonly peerServer: https.Server;
  private readonly peerSockets = new WeakSet<object>();
  private readonly destroySockets: () => void;
  private readonly log: Logger;
  private api: ApiServer | undefined;
  private selfMember: Member | undefined;
  private readonly metrics: { members: Gauge; changes: Counter; moved: Counter; hops: Counter<'kind'> };

  constructor(private readonly options: ClusterNodeOptions) {
    super();
    this.log = options.log ?? silentLogger;
    const registers = options.registry ? [options.registry] : [];
    this.metrics = {
      members: new Gauge({ name: 'ctll_cluster_members', help: 'Live api-backends of the cluster, as this node sees them', registers }),
      changes: new Counter({ name: 'ctll_cluster_member_changes_total', help: 'Changes of the members seen by this node', registers }),
      moved: new Counter({ name: 'ctll_cluster_bridges_moved_total', help: "This node's bridges told to reconnect (4005) because their user's owner changed", registers }),
      hops: new Counter({ name: 'ctll_cluster_hops_total', help: 'Requests and bridges forwarded to the owning api-backend, by kind', labelNames: ['kind'] as const, registers }),
    };
    this.selfMember = options.self;
    this.peerServer = https.createServer({ ...options.tls.server, requestTimeout: 0, headersTimeout: 60_000, noDelay: true });
    this.peerServer.on('secureConnection', (socket: TLSSocket) => this.peerSockets.add(socket));
    // A connection without a certificate of the stack's CA fails its handshake; nothing is served.
    this.peerServer.on('tlsClientError', () => undefined);
    this.destroySockets = trackSockets(this.peerServer);
    options.membership.on('change', (members) => this.membersChanged(members));
    options.membership.on('error', (e) => this.log.warn('cluster membership lookup failed', { error: e.message }));
  }

  /** Serves the peer listener's requests with the same gateway as the public listener. */
  attach(api: ApiServer): void {
    this.api = api;
    this.peerServer.on('request', (req: IncomingMessage, res: ServerResponse) => api.server.emit('request', req, res));
    this.peerServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => api.server.emit('upgrade', req, socket, head));
  }

  async start(): Promise<void> {
    await this.options.membership.start();
    this.findSelf(this.options.membership.members);
    this.metrics.members.set(this.options.membership.members.length);
    await new Promise<void>((resolve, reject) => {
      this.peerServer.once('error', reject);
      this.peerServer.listen(this.options.listen.port, this.options.listen.host, () => {
        this.peerServer.off('error', reject);
        resolve();
      });
    });
    this.log.info('cluster member', { self: this.selfMember ?? 'not among the members yet', members: this.options.membership.members.length });
  }

  async close(): Promise<void> {
    this.options.membership.close();
    await closeNow(this.peerServer, this.destroySockets);
    this.options.tls.agent.destroy();
  }

  get self(): Member | undefined {
    return this.selfMember;
  }

  get members(): readonly Member[] {
    return this.options.membership.members;
  }

  view(): { self: Member | undefined; members: readonly Member[] } {
    return { self: this.selfMember, members: this.options.membership.members };
  }

  /** The owner of a routing key among the live members. */
  ownerOf(route: string): Member | undefined {
    return ownerOf(this.options.membership.members, route);
  }

  private isPeer(req: IncomingMessage): boolean {
    return this.peerSockets.has(req.socket) && isAuthenticatedPeer(req.socket);
  }

  vouched(req: IncomingMessage): PeerIdentity | 'forged' | undefined {
    const claims = Object.keys(req.headers).some((h) => h.startsWith(CLUSTER_HEADER_PREFIX));
    if (!this.isPeer(req)) return claims ? 'forged' : undefined;
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return typeof v === 'string' && v !== '' ? v : undefined;
    };
    const subject = header(CLUSTER_SUBJECT_HEADER);
    const expires = Number(header(CLUSTER_EXPIRES_HEADER));
    let decoded: string | undefined;
    try {
      decoded = subject === undefined ? undefined : decodeURIComponent(subject);
    } catch {
      decoded = undefined;
    }
    return {
      address: header(CLUSTER_ADDRESS_HEADER) ?? (req.socket.remoteAddress ?? 'unknown'),
      ...(decoded !== undefined ? { subject: decoded } : {}),
      ...(Number.isFinite(expires) && expires > 0 ? { expiresAt: expires } : {}),
    };
  }

  placement(req: IncomingMessage, route: string): 'here' | 'not-here' | { owner: Member } {
    const owner = this.ownerOf(route);
    if (owner === undefined || owner === this.selfMember) return 'here';
    // A peer sent it here as the owner, but this node sees another: the two are a lookup apart.
    // Never send it round again; the client retries once the members agree.
    if (this.isPeer(req)) return 'not-here';
    return { owner };
  }

  private identityHeaders(identity: PeerIdentity): Record<string, string> {
    return {
      [CLUSTER_ADDRESS_HEADER]: identity.address,
      ...(identity.subject !== undefined ? { [CLUSTER_SUBJECT_HEADER]: encodeURIComponent(identity.subject) } : {}),
      ...(identity.expiresAt !== undefined ? { [CLUSTER_EXPIRES_HEADER]: String(identity.expiresAt) } : {}),
    };
  }

  forwardRequest(req: IncomingMessage, res: ServerResponse, owner: Member, identity: PeerIdentity, authorization: string | undefined, refuse: (message: string) => void): void {
    this.metrics.hops.inc({ kind: 'request' });
    const headers = { ...this.identityHeaders(identity), ...(authorization !== undefined ? { authorization } : {}) };
    forwardRequestToPeer(req, res, { owner, agent: this.options.tls.agent, headers }, refuse);
  }

  forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, owner: Member, identity: PeerIdentity, events: SpliceEvents): BridgeSplice {
    this.metrics.hops.inc({ kind: 'bridge' });
    return forwardUpgradeToPeer(req, socket, head, { owner, agent: this.options.tls.agent, headers: this.identityHeaders(identity) }, events);
  }

  /** With DNS membership, this node is the member whose address is one of this host's. */
  private findSelf(members: readonly Member[]): void {
    if (this.options.self !== undefined) return;
    const mine = localAddresses();
    this.selfMember = members.find((m) => mine.has(m.slice(0, m.lastIndexOf(':')).replace(/^\[|\]$/g, '')));
  }

  private membersChanged(members: readonly Member[]): void {
    this.findSelf(members);
    const moved = this.api?.cutBridges((route) => this.ownerOf(route) === this.selfMember) ?? 0;
    this.metrics.members.set(members.length);
    this.metrics.changes.inc();
    this.metrics.moved.inc(moved);
    this.log.info('cluster members changed', { members: members.length, bridgesMoved: moved });
    this.emit('change', members, moved);
  }
}
