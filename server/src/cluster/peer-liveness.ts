/**
 * Which listed members answer (docs/scaling.md, "a node's loss"). On the Swarm stack the
 * api-backends run in their nodes' network namespaces, where Swarm's `tasks.<service>` cannot see
 * them, so the member list is the nodes' addresses written at deploy time and a dead node would
 * stay in it. So each node asks every other listed member, every interval, over the same mutual
 * TLS as the hop, whether it is there (`GET /cluster/alive` on the peer listener, answered 204
 * to a peer of the stack's CA only); a member that fails `failures` probes in a row is down and
 * leaves the live members that ownership and placement use; one answer brings it back. A hop
 * that cannot connect to a member counts as a failed probe too (it is one). This node is always
 * live to itself.
 *
 * Every node probes the same peers with the same settings, so they reach the same live set a
 * probe or two apart; while they disagree, the rule that a forwarded request is never forwarded
 * again keeps it safe (cluster-node.ts: the receiving node answers `owner-moving`, the client
 * retries).
 */
import { EventEmitter } from 'node:events';
import https from 'node:https';
import type { Member } from './owner-map.js';

/** The peer listener's route a probe asks; not served on the public listener. */
export const ALIVE_PATH = '/cluster/alive';

/** Probe every second, wait up to a second for each answer, and call a member down after 3 misses in a row. */
export const DEFAULT_PROBE_INTERVAL_MS = 1_000;
export const DEFAULT_PROBE_TIMEOUT_MS = 1_000;
export const DEFAULT_PROBE_FAILURES = 3;

export interface LivenessSettings {
  intervalMs: number;
  timeoutMs: number;
  /** Probes failed in a row before a member is down. */
  failures: number;
}

/** What is wrong with the settings, or undefined (the server's configuration names the variables). */
export function checkLiveness(s: LivenessSettings): string | undefined {
  if (!Number.isInteger(s.intervalMs) || s.intervalMs < 100 || s.intervalMs > 60_000) return `the probe interval must be 100-60000 ms, got ${s.intervalMs}`;
  if (!Number.isInteger(s.timeoutMs) || s.timeoutMs < 50 || s.timeoutMs > s.intervalMs) return `the probe timeout must be 50 ms up to the probe interval (${s.intervalMs} ms: one probe per peer at a time), got ${s.timeoutMs}`;
  if (!Number.isInteger(s.failures) || s.failures < 1 || s.failures > 100) return `the probe failures before a member is down must be 1-100, got ${s.failures}`;
  return undefined;
}

/** Asks one peer whether it is there; resolves true on its 204 within the timeout. */
export type Probe = (peer: Member, timeoutMs: number) => Promise<boolean>;

/** The probe over the hop's mutual TLS: `GET /cluster/alive`, answered 204 by a peer of the stack. */
export function probeOverTls(agent: https.Agent): Probe {
  return (peer, timeoutMs) => {
    const at = peer.lastIndexOf(':');
    return new Promise((resolve) => {
      const req = https.request({ host: peer.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(peer.slice(at + 1)), method: 'GET', path: ALIVE_PATH, agent }, (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode === 204));
        res.on('error', () => done(false));
      });
      // One deadline for the whole exchange (connect, handshake, answer): a dead machine sends nothing back.
      const timer = setTimeout(() => req.destroy(new Error('timed out')), timeoutMs);
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        resolve(ok);
      };
      req.on('error', () => done(false));
      req.end();
    });
  };
}

/** The errors of a hop that never reached the peer (not a cut mid-stream). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ETIMEDOUT']);
export const isUnreachable = (code: string | undefined): boolean => code !== undefined && UNREACHABLE.has(code);

export interface PeerLivenessEvents {
  /** A peer went down or came back; `down` is every peer down now. */
  change: [down: ReadonlySet<Member>];
  /** A probe of `peer` failed (for the per-peer counter). */
  failure: [peer: Member];
}

interface PeerState {
  /** Probes failed in a row. */
  misses: number;
  down: boolean;
  probing: boolean;
}

export class PeerLiveness extends EventEmitter<PeerLivenessEvents> {
  private readonly peers = new Map<Member, PeerState>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly settings: LivenessSettings,
    private readonly probe: Probe,
  ) {
    super();
    const problem = checkLiveness(settings);
    if (problem) throw new RangeError(problem);
  }

  /**
   * The members to probe (every listed one but this node). A new peer counts as live until it
   * fails: a node that starts must not think itself alone and take every user.
   */
  setPeers(peers: Iterable<Member>): void {
    const next = new Set(peers);
    let changed = false;
    for (const [m, s] of this.peers) {
      if (next.has(m)) continue;
      this.peers.delete(m);
      changed ||= s.down;
    }
    for (const m of next) if (!this.peers.has(m)) this.peers.set(m, { misses: 0, down: false, probing: false });
    if (changed) this.emit('change', this.down());
  }

  /** The peers down now. */
  down(): Set<Member> {
    return new Set([...this.peers].filter(([, s]) => s.down).map(([m]) => m));
  }

  /** `members` without the peers down (this node is never down to itself: it is no peer). */
  live(members: readonly Member[]): Member[] {
    return members.filter((m) => this.peers.get(m)?.down !== true);
  }

  /** Probes every interval from now on (the first round at once). */
  start(): void {
    if (this.closed || this.timer) return;
    this.round();
    this.timer = setInterval(() => this.round(), this.settings.intervalMs);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.removeAllListeners();
  }

  /** A hop to `peer` could not connect: one failed probe, as a probe's would be. */
  unreachable(peer: Member): void {
    if (this.peers.has(peer)) this.record(peer, false);
  }

  /** Probes every peer not already being probed; resolves when this round's answers are in. */
  round(): Promise<void> {
    return Promise.all([...this.peers].filter(([, s]) => !s.probing).map(([m]) => this.probeOne(m))).then(() => undefined);
  }

  private async probeOne(peer: Member): Promise<void> {
    const state = this.peers.get(peer)!;
    state.probing = true;
    let ok: boolean;
    try {
      ok = await this.probe(peer, this.settings.timeoutMs);
    } catch {
      ok = false;
    }
    state.probing = false;
    if (this.closed || this.peers.get(peer) !== state) return;
    this.record(peer, ok);
  }

  private record(peer: Member, ok: boolean): void {
    const state = this.peers.get(peer)!;
    if (ok) {
      state.misses = 0;
      if (!state.down) return;
      state.down = false;
    } else {
      state.misses += 1;
      this.emit('failure', peer);
      if (state.down || state.misses < this.settings.failures) return;
      state.down = true;
    }
    this.emit('change', this.down());
  }
}
