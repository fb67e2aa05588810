/**
 * This api-backend as one member of several (docs/scaling.md): who owns a user (placements.ts
 * and owner-map.ts, over membership.ts's live members and the users each member publishes,
 * placement-exchange.ts), the peer listener other members reach it on (mutual TLS,
 * peer-tls.ts), and the gateway's cluster hooks (api-server.ts's ClusterHooks): the identity a
 * peer vouches for, and the hop to the owner (peer-forward.ts).
 *
 * The identity headers (x-cloudtolocalllm-cluster-*) are believed only on a connection to the
 * peer listener that presented a certificate of the stack's CA; the public listener refuses a
 * request that carries any of them ('peer-only'), so a client cannot claim to be anyone.
 */
import { EventEmitter } from 'node:events';
import { PROXY_START_PATH } from '@cloudtolocalllm/api-contract';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ApiServer, ClusterHooks, PeerIdentity } from '../api/api-server.js';
import type { BridgeSplice, SpliceEvents } from '../api/bridge-forward.js';
import { closeNow, keepIdleConnections, trackSockets } from '../http-lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import type { Membership } from './membership.js';
import { DEFAULT_MEMBERSHIP_INTERVAL_MS } from './membership.js';
import { ownerOf, ranking, type Member } from './owner-map.js';
import { PLACEMENTS_PATH, PlacementsRefused, readPlacements, sendPlacements } from './placement-exchange.js';
import { PlacementTable } from './placements.js';
import { forwardRequestToPeer, forwardUpgradeToPeer } from './peer-forward.js';
import { ALIVE_PATH, DEFAULT_PROBE_FAILURES, DEFAULT_PROBE_INTERVAL_MS, DEFAULT_PROBE_TIMEOUT_MS, isUnreachable, PeerLiveness, probeOverTls, type LivenessSettings, type Probe } from './peer-liveness.js';
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
  /** How often this node's users are published to its peers (besides soon after a change). */
  publishIntervalMs?: number;
  /** The load bound's margin over an even share (owner-map.ts). */
  epsilon?: number;
  /** How peers are probed and when one is down (peer-liveness.ts); its defaults unless told. */
  liveness?: Partial<LivenessSettings>;
  /** The probe itself; `GET /cluster/alive` over the hop's TLS unless told (tests). */
  probe?: Probe;
}

/** What the cluster needs of the gateway: the users it serves, and cutting the ones it no longer holds. */
export interface ServedUsers {
  /** Routing parts of the users whose bridge or proxy runs here. */
  servedRoutes(): string[];
  /** Cuts the bridges of users not `stillOwned` (4005); returns how many. */
  cutBridges(stillOwned: (route: string) => boolean): number;
}

/** How soon after a bridge opens or closes this node publishes its users. */
const PUBLISH_SOON_MS = 25;

export interface ClusterNodeEvents {
  /** The live members changed; `moved` counts this node's bridges cut because their owner moved. */
  change: [members: readonly Member[], moved: number];
}

/** `POST /api/proxy/start`: a request that starts the user's proxy, so places the user like a bridge. */
const startsProxy = (req: IncomingMessage): boolean => req.method === 'POST' && (req.url ?? '').split('?')[0] === PROXY_START_PATH;

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
  private api: ServedUsers | undefined;
  private selfMember: Member | undefined;
  private readonly table: PlacementTable;
  private readonly liveness: PeerLiveness;
  /** The listed members less the peers down (peer-liveness.ts): what ownership and placement use. */
  private liveMembers: readonly Member[] = [];
  /** Peers with a ctll_cluster_peer_up series. */
  private labelled = new Set<Member>();
  private publishTimer: NodeJS.Timeout | undefined;
  private soonTimer: NodeJS.Timeout | undefined;
  /** Peers with a list on its way; a change meanwhile sends again once it lands. */
  private readonly sending = new Map<Member, boolean>();
  private closed = false;
  private readonly metrics: {
    members: Gauge;
    peerUp: Gauge<'peer'>;
    probeFailures: Counter<'peer'>;
    changes: Counter;
    moved: Counter;
    hops: Counter<'kind'>;
    placed: Counter<'choice'>;
    usersMoved: Counter<'reason'>;
  };

  constructor(private readonly options: ClusterNodeOptions) {
    super();
    this.log = options.log ?? silentLogger;
    const registers = options.registry ? [options.registry] : [];
    const table = (this.table = new PlacementTable(options.epsilon !== undefined ? { epsilon: options.epsilon } : {}));
    new Gauge({
      name: 'ctll_cluster_users_owned',
      help: 'Users this node holds (their bridge or proxy runs here and no higher-ranked member holds them)',
      registers,
      collect() {
        this.set(table.published().length);
      },
    });
    new Gauge({
      name: 'ctll_cluster_users_known',
      help: 'Users placed on any live member, as this node knows from what the members publish',
      registers,
      collect() {
        this.set(table.known);
      },
    });
    this.metrics = {
      placed: new Counter({ name: 'ctll_cluster_users_placed_total', help: "New users this node placed as their bridge or proxy start arrived, by choice: 'first' (their rendezvous first choice) or 'bounded' (that one was full)", labelNames: ['choice'] as const, registers }),
      usersMoved: new Counter({ name: 'ctll_cluster_users_moved_total', help: "Users this node stopped holding, by reason: 'members' (a membership change) or 'race' (a higher-ranked member placed them too)", labelNames: ['reason'] as const, registers }),
      members: new Gauge({ name: 'ctll_cluster_members', help: 'Live api-backends of the cluster, as this node sees them (listed, less the peers down)', registers }),
      // The peer label is a member's address: the operator's own node list, no user's data.
      peerUp: new Gauge({ name: 'ctll_cluster_peer_up', help: 'Whether each listed peer answers its probes (1) or is down (0: it failed enough probes in a row)', labelNames: ['peer'] as const, registers }),
      probeFailures: new Counter({ name: 'ctll_cluster_probe_failures_total', help: 'Probes of each listed peer that failed (no answer within the timeout, or a hop that could not connect)', labelNames: ['peer'] as const, registers }),
      changes: new Counter({ name: 'ctll_cluster_member_changes_total', help: 'Changes of the members seen by this node', registers }),
      moved: new Counter({ name: 'ctll_cluster_bridges_moved_total', help: "This node's bridges told to reconnect (4005) because their user's owner changed", registers }),
      hops: new Counter({ name: 'ctll_cluster_hops_total', help: 'Requests and bridges forwarded to the owning api-backend, by kind', labelNames: ['kind'] as const, registers }),
    };
    this.selfMember = options.self;
    this.peerServer = https.createServer({ ...options.tls.server, requestTimeout: 0, headersTimeout: 60_000, noDelay: true });
    keepIdleConnections(this.peerServer);
    this.peerServer.on('secureConnection', (socket: TLSSocket) => this.peerSockets.add(socket));
    // A connection without a certificate of the stack's CA fails its handshake; nothing is served.
    this.peerServer.on('tlsClientError', () => undefined);
    this.destroySockets = trackSockets(this.peerServer);
    this.liveness = new PeerLiveness(
      {
        intervalMs: options.liveness?.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS,
        timeoutMs: options.liveness?.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
        failures: options.liveness?.failures ?? DEFAULT_PROBE_FAILURES,
      },
      options.probe ?? probeOverTls(options.tls.agent),
    );
    this.liveness.on('failure', (peer) => this.metrics.probeFailures.inc({ peer }));
    this.liveness.on('change', (down) => {
      this.log.warn('cluster peers down changed', { down: [...down] });
      this.liveChanged();
    });
    options.membership.on('change', () => this.liveChanged());
    options.membership.on('error', (e) => this.log.warn('cluster membership lookup failed', { error: e.message }));
  }

  /** Serves the peer listener's requests with the same gateway as the public listener. */
  attach(api: ApiServer & ServedUsers): void {
    this.api = api;
    this.peerServer.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '').split('?')[0];
      if (path === PLACEMENTS_PATH) return void this.receivePlacements(req, res);
      if (path === ALIVE_PATH) return this.answerProbe(req, res);
      api.server.emit('request', req, res);
    });
    this.peerServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => api.server.emit('upgrade', req, socket, head));
  }

  async start(): Promise<void> {
    await this.options.membership.start();
    this.findSelf(this.options.membership.members);
    this.updatePeers();
    this.liveMembers = this.liveness.live(this.options.membership.members);
    this.metrics.members.set(this.liveMembers.length);
    await new Promise<void>((resolve, reject) => {
      this.peerServer.once('error', reject);
      this.peerServer.listen(this.options.listen.port, this.options.listen.host, () => {
        this.peerServer.off('error', reject);
        resolve();
      });
    });
    this.log.info('cluster member', { self: this.selfMember ?? 'not among the members yet', members: this.options.membership.members.length });
    this.liveness.start();
    this.refreshLocal();
    void this.publish();
    this.publishTimer = setInterval(() => this.publishNow(), this.options.publishIntervalMs ?? DEFAULT_MEMBERSHIP_INTERVAL_MS);
    this.publishTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.publishTimer);
    clearTimeout(this.soonTimer);
    this.liveness.close();
    this.options.membership.close();
    await closeNow(this.peerServer, this.destroySockets);
    this.options.tls.agent.destroy();
  }

  get self(): Member | undefined {
    return this.selfMember;
  }

  /** The live members: listed, less the peers down. */
  get members(): readonly Member[] {
    return this.liveMembers;
  }

  /** For /health: the members listed, and those of them live. */
  view(): { self: Member | undefined; members: readonly Member[]; live: readonly Member[] } {
    return { self: this.selfMember, members: this.options.membership.members, live: this.liveMembers };
  }

  /**
   * The owner of a routing key: the member that holds the user, else (never placed) its plain
   * rendezvous owner among the live members.
   */
  ownerOf(route: string): Member | undefined {
    return this.table.owner(route) ?? ownerOf(this.liveMembers, route);
  }

  /** The gateway's bridges opened or closed: publish this node's users soon. */
  servedChanged(): void {
    if (this.closed || this.soonTimer) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      this.publishNow();
    }, PUBLISH_SOON_MS);
    this.soonTimer.unref();
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

  placement(req: IncomingMessage, route: string, kind: 'request' | 'bridge'): 'here' | 'not-here' | { owner: Member } {
    const held = this.table.owner(route);
    // What starts a proxy places its user: a bridge, or a request to start one.
    const places = kind === 'bridge' || startsProxy(req);
    if (this.isPeer(req)) {
      // A peer sent it here as the owner, but this node knows another holds the user: the two
      // are a message or a lookup apart. Never send it round again; the client retries.
      if (held !== undefined && held !== this.selfMember) return 'not-here';
      // A node outside the members holds nothing: serving here would only be cut again once the
      // sender hears the members too (and count the bridge moved twice).
      if (this.selfMember === undefined || !this.liveMembers.includes(this.selfMember)) return 'not-here';
      if (places) this.table.servedHere(route);
      return 'here';
    }
    if (held !== undefined) return held === this.selfMember ? 'here' : { owner: held };
    const members = this.liveMembers;
    // Never placed anywhere: what starts a proxy places its user under the bound; any other
    // request (it starts nothing) goes where plain rendezvous says, alike on every node.
    const target = places ? this.table.place(route) : ownerOf(members, route);
    if (places && target !== undefined) this.metrics.placed.inc({ choice: target === ranking(members, route)[0] ? 'first' : 'bounded' });
    if (target === undefined || target === this.selfMember) {
      if (places) this.table.servedHere(route);
      return 'here';
    }
    if (places) this.table.sentTo(target, route);
    return { owner: target };
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
    forwardRequestToPeer(req, res, { owner, agent: this.options.tls.agent, headers, unreachable: (code) => this.hopFailed(owner, code) }, refuse);
  }

  forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, owner: Member, identity: PeerIdentity, events: SpliceEvents): BridgeSplice {
    this.metrics.hops.inc({ kind: 'bridge' });
    return forwardUpgradeToPeer(req, socket, head, { owner, agent: this.options.tls.agent, headers: this.identityHeaders(identity), unreachable: (code) => this.hopFailed(owner, code) }, events);
  }

  /** A hop that could not connect is a failed probe of that peer (peer-liveness.ts). */
  private hopFailed(owner: Member, code: string | undefined): void {
    if (isUnreachable(code)) this.liveness.unreachable(owner);
  }

  /** A probe (peer-liveness.ts): 204 to a peer of the stack, nothing to anyone else. */
  private answerProbe(req: IncomingMessage, res: ServerResponse): void {
    const status = !this.isPeer(req) ? 403 : req.method === 'GET' ? 204 : 405;
    res.writeHead(status, { 'content-length': 0, 'cache-control': 'no-store' });
    res.end();
  }

  private updatePeers(): void {
    const peers = this.options.membership.members.filter((m) => m !== this.selfMember);
    this.liveness.setPeers(peers);
    const down = this.liveness.down();
    for (const p of this.labelled) if (!peers.includes(p)) this.metrics.peerUp.remove({ peer: p });
    this.labelled = new Set(peers);
    for (const p of peers) this.metrics.peerUp.set({ peer: p }, down.has(p) ? 0 : 1);
  }

  /** The listed members or the peers down changed: recompute the live members, act if they differ. */
  private liveChanged(): void {
    if (this.closed) return;
    this.findSelf(this.options.membership.members);
    this.updatePeers();
    const live = this.liveness.live(this.options.membership.members);
    if (live.length === this.liveMembers.length && live.every((m, i) => m === this.liveMembers[i])) return;
    this.liveMembers = live;
    this.membersChanged(live);
  }

  /** With DNS membership, this node is the member whose address is one of this host's. */
  private findSelf(members: readonly Member[]): void {
    if (this.options.self !== undefined) return;
    const mine = localAddresses();
    this.selfMember = members.find((m) => mine.has(m.slice(0, m.lastIndexOf(':')).replace(/^\[|\]$/g, '')));
  }

  private membersChanged(members: readonly Member[]): void {
    this.refreshLocal();
    const moved = this.settle('members');
    this.metrics.members.set(members.length);
    this.metrics.changes.inc();
    this.log.info('cluster members changed', { members: members.length, bridgesMoved: moved });
    this.emit('change', members, moved);
    // A new member needs this node's users now, not an interval later.
    void this.publish();
  }

  private refreshLocal(): void {
    this.table.setView(this.liveMembers, this.selfMember);
    if (this.api) this.table.setLocal(this.api.servedRoutes());
  }

  /** Lets go of the users another member now holds: their bridges here are cut (4005). */
  private settle(reason: 'members' | 'race'): number {
    const lost = this.table.settle();
    if (lost.length === 0) return 0;
    this.metrics.usersMoved.inc({ reason }, lost.length);
    const cut = this.api?.cutBridges((route) => this.table.holds(route)) ?? 0;
    this.metrics.moved.inc(cut);
    if (cut > 0) this.log.info('cluster users moved', { reason, users: lost.length, bridgesMoved: cut });
    return cut;
  }

  private publishNow(): void {
    if (this.closed) return;
    this.refreshLocal();
    this.settle('race');
    void this.publish();
  }

  /** Sends this node's users to every peer; one list in flight per peer, the newest after it. */
  private async publish(): Promise<void> {
    const self = this.selfMember;
    if (this.closed || self === undefined) return;
    const placements = { member: self, routes: this.table.published() };
    // Every listed peer, down ones too: a peer this node cannot reach may still reach the others
    // and route by their lists; a send to a dead one costs its timeout, one at a time.
    await Promise.all(
      this.options.membership.members
        .filter((m) => m !== self)
        .map(async (peer) => {
          if (this.sending.has(peer)) return void this.sending.set(peer, true);
          this.sending.set(peer, false);
          const ok = await sendPlacements(peer, this.options.tls.agent, placements);
          const again = this.sending.get(peer) === true;
          this.sending.delete(peer);
          if (!ok) this.log.debug('cluster placements not delivered', { peer });
          if (again) this.servedChanged();
        }),
    );
  }

  private async receivePlacements(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = (status: number, error?: string): void => {
      const body = error === undefined ? '' : JSON.stringify({ error });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    };
    if (!this.isPeer(req)) return answer(403, 'only a peer of the stack may publish placements');
    if (req.method !== 'PUT') return answer(405, `${PLACEMENTS_PATH} takes PUT`);
    try {
      const { member, routes } = await readPlacements(req);
      this.table.setPeer(member, routes);
      answer(204);
      this.settle('race');
    } catch (e) {
      if (e instanceof PlacementsRefused) return answer(e.status, e.message);
      answer(400, 'the placements list could not be read');
    }
  }
}
