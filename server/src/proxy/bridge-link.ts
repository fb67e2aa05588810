/**
 * The proxy's end of the wire to one of the user's computers: that computer's bridge connection,
 * with an HTTP/2 client session running on it, straight on the socket (`h2`) or inside its
 * WebSocket (`websocket`, protocol.ts). Each relayed request is one HTTP/2 stream on that
 * session. The user's computers together are BridgeLinks (bridge-links.ts), one link each.
 */
import { EventEmitter } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { createWebSocketStream, type WebSocket } from 'ws';
import { startHeartbeat, startSessionHeartbeat, type HeartbeatOptions } from '@cloudtolocalllm/bridge/connection/heartbeat';
import { randomBytes } from 'node:crypto';
import { CloseCode, goawayData, parseGoawayData, replacedReason, TUNNEL_AUTHORITY, type TunnelTransport } from '@cloudtolocalllm/bridge/connection/protocol';
import { SESSION_WINDOW_BYTES, STREAM_WINDOW_BYTES } from '@cloudtolocalllm/bridge/connection/tunnel-session';
import type { Logger } from '../log.js';


/** A bridge connection as the proxy takes it: its WebSocket, or its upgraded socket (101 written). */
export type BridgeWire = { transport: 'websocket'; ws: WebSocket } | { transport: 'h2'; socket: Socket; head: Buffer };

interface Link {
  wire: BridgeWire;
  session: ClientHttp2Session;
  connectedAt: number;
  stopHeartbeat: () => void;
  /** Names this tunnel to its bridge (in the 101 answer): renewals must name it. */
  id: string;
  /** The address the cloud saw the bridge connect from. */
  address: string;
  client: string;
  edge: boolean;
  /** When the credential the tunnel was opened (or last renewed) with expires; none for a static token. */
  expiresAt?: number;
  expiryTimer?: NodeJS.Timeout;
}

/** What the proxy knows of a bridge connection when it takes it. */
export interface TunnelTerms {
  address: string;
  /** The bridge's User-Agent, for the api-backend's audit lines (link-events.ts). */
  client?: string;
  /** Sent straight by nginx (EDGE_TUNNEL_HEADER): the api-backend counts it from the link events. */
  edge?: boolean;
  expiresAt?: number;
}

/** One tunnel as the api-backend's link watch learns of it (link-events.ts). */
export interface TunnelInfo {
  id: string;
  address: string;
  client: string;
  transport: TunnelTransport;
  edge: boolean;
}

export interface BridgeLinkEvents {
  connected: [];
  /** `tunnel` is the one that closed; `replaced` when a bridge of the same computer name took over. */
  disconnected: [reason: string, tunnel: TunnelInfo, replaced: boolean];
  activity: [];
}

export class BridgeLink extends EventEmitter<BridgeLinkEvents> {
  private link: Link | undefined;
  /** Requests relayed on this link and not yet finished (relay.ts counts them; routing reads them). */
  inFlight = 0;

  constructor(
    /** The computer's name (MACHINE_HEADER), which this link keeps across reconnections. */
    readonly name: string,
    private readonly heartbeat: HeartbeatOptions,
    private readonly log: Logger,
  ) {
    super();
  }

  /** The address the cloud saw this computer's bridge connect from. */
  get address(): string | undefined {
    return this.link?.address;
  }

  get connected(): boolean {
    return this.link !== undefined && !this.link.session.destroyed;
  }

  get connectedSince(): number | undefined {
    return this.link?.connectedAt;
  }

  /** A new tunnel's id, given to the bridge in the 101 answer before attach() takes its WebSocket. */
  static newTunnelId(): string {
    return randomBytes(18).toString('base64url');
  }

  /**
   * Extends the tunnel's deadline to a renewed credential's expiry, if `id` is the open tunnel
   * (so only the bridge that opened it can keep it). Returns the new deadline, or undefined.
   */
  renew(id: string, expiresAt: number): number | undefined {
    const link = this.link;
    if (!link || link.id !== id || link.expiresAt === undefined || !Number.isFinite(expiresAt)) return undefined;
    if (expiresAt > link.expiresAt) this.setDeadline(link, expiresAt);
    return link.expiresAt;
  }

  /** Takes a freshly upgraded bridge connection; a previous bridge of the same computer name is replaced. */
  attach(wire: BridgeWire, id: string, terms: TunnelTerms): void {
    // Created synchronously: a frame arriving before the stream exists would be lost.
    const carrier = wire.transport === 'websocket' ? createWebSocketStream(wire.ws) : wire.socket;
    if (wire.transport === 'websocket') {
      carrier.on('error', () => {
        /* reported by the WebSocket and the session */
      });
    } else {
      // The bridge's first bytes may have come with its request; Nagle would hold small frames.
      if (wire.head.length) wire.socket.unshift(wire.head);
      wire.socket.setNoDelay(true);
    }
    if (this.link) {
      // The replaced bridge says by whom, so a person can tell their own second computer from a stranger.
      this.drop(this.link, replacedReason(terms.address, Date.now()), CloseCode.Replaced);
    }
    const session = http2.connect(`http://${TUNNEL_AUTHORITY}`, {
      createConnection: () => carrier,
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false },
      maxSessionMemory: 64,
      // Many-minute generations are normal: no idle timeout on the session.
    });
    const link: Link = { wire, session, connectedAt: Date.now(), stopHeartbeat: () => {}, id, address: terms.address, client: terms.client ?? 'unknown', edge: terms.edge ?? false };
    this.link = link;
    if (terms.expiresAt !== undefined) this.setDeadline(link, terms.expiresAt);
    session.on('localSettings', () => session.setLocalWindowSize(SESSION_WINDOW_BYTES));
    session.on('error', (e: Error) => {
      this.log.warn('bridge spoke invalid HTTP/2; dropping it', { error: e.message });
      this.drop(link, 'the bridge sent data that is not valid HTTP/2', CloseCode.ProtocolError);
    });
    const dead = (silent: number): void =>
      this.drop(link, `the bridge stopped answering heartbeats (silent for ${Math.round(silent / 1000)} s)`, CloseCode.HeartbeatTimeout);
    if (wire.transport === 'websocket') {
      const { ws } = wire;
      session.on('close', () => this.drop(link, 'the tunnel session closed'));
      ws.on('message', () => this.emit('activity'));
      ws.on('close', (code: number) => this.drop(link, `the bridge disconnected (code ${code})`));
      ws.on('error', (e: Error) => this.drop(link, `the bridge connection failed: ${e.message}`));
      link.stopHeartbeat = startHeartbeat(ws, this.heartbeat, dead);
    } else {
      let said: string | undefined;
      session.on('goaway', (_code: number, _last: number, data?: Buffer) => {
        const close = parseGoawayData(data);
        said ??= close ? `code ${close.code}: ${close.reason}` : undefined;
      });
      const left = (otherwise: string): string => (said ? `the bridge disconnected (${said})` : otherwise);
      session.on('close', () => this.drop(link, left('the tunnel session closed')));
      wire.socket.on('close', () => this.drop(link, left('the bridge disconnected')));
      // Bytes while requests are open are the user's traffic (the idle clock's business); bytes
      // of an idle link are only its heartbeat.
      link.stopHeartbeat = startSessionHeartbeat(session, wire.socket, this.heartbeat, dead, () => {
        if (this.inFlight > 0) this.emit('activity');
      });
    }
    this.log.info('bridge connected', { machine: this.name, transport: wire.transport });
    this.emit('connected');
  }

  /** The open tunnel, while connected. */
  get tunnel(): TunnelInfo | undefined {
    return this.link ? infoOf(this.link) : undefined;
  }

  /** How this computer's tunnel travels, while connected. */
  get transport(): TunnelTransport | undefined {
    return this.link?.wire.transport;
  }

  /** Opens a stream for one relayed request, or undefined when no bridge is connected. */
  request(headers: OutgoingHttpHeaders, options: { endStream: boolean }): ClientHttp2Stream | undefined {
    const link = this.link;
    if (!link || link.session.destroyed || link.session.closed) return undefined;
    try {
      return link.session.request({ ':authority': TUNNEL_AUTHORITY, ':scheme': 'http', ...headers }, options);
    } catch (e) {
      // The session is closing (GOAWAY) or out of stream ids: as good as no bridge.
      this.log.warn('could not open a stream to the bridge', { error: (e as Error).message });
      return undefined;
    }
  }

  /** Closes the bridge connection (the proxy is stopping). */
  close(reason = 'the proxy is stopping'): void {
    if (this.link) this.drop(this.link, reason, CloseCode.ProxyStopping);
  }

  /** A tunnel lives only while its credential does (issue 13, finding 3). */
  private setDeadline(link: Link, expiresAt: number): void {
    clearTimeout(link.expiryTimer);
    link.expiresAt = expiresAt;
    // setTimeout holds at most 2^31-1 ms; a longer credential is checked again then.
    const wait = Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1);
    link.expiryTimer = setTimeout(() => {
      if (Date.now() < expiresAt) return this.setDeadline(link, expiresAt);
      this.drop(link, `the credential expired at ${new Date(expiresAt).toISOString()} without renewal; reconnect with a fresh one`, CloseCode.CredentialExpired);
    }, wait);
    link.expiryTimer.unref();
  }

  /** The open tunnel's deadline, for /health and tests. */
  get expiresAt(): number | undefined {
    return this.link?.expiresAt;
  }

  private drop(link: Link, reason: string, closeCode?: number): void {
    if (this.link !== link) return;
    this.link = undefined;
    clearTimeout(link.expiryTimer);
    link.stopHeartbeat();
    const { wire, session } = link;
    if (wire.transport === 'h2') {
      // The reason goes first, in a GOAWAY; destroying the session then still writes it.
      if (closeCode !== undefined && !session.destroyed) {
        const code = closeCode === CloseCode.ProtocolError ? http2.constants.NGHTTP2_PROTOCOL_ERROR : http2.constants.NGHTTP2_NO_ERROR;
        session.goaway(code, 0, goawayData(closeCode, reason.slice(0, 120)));
      }
      session.destroy();
      // A socket the session leaves open (its peer not reading) must not be kept.
      setTimeout(() => wire.socket.destroy(), 2_000).unref();
    } else {
      session.destroy();
      if (closeCode !== undefined && wire.ws.readyState === wire.ws.OPEN) {
        wire.ws.close(closeCode, reason.slice(0, 120));
        // A peer that does not complete the closing handshake must not keep the socket.
        setTimeout(() => wire.ws.terminate(), 2_000).unref();
      } else {
        wire.ws.terminate();
      }
    }
    this.log.info('bridge disconnected', { machine: this.name, reason });
    this.emit('disconnected', reason, infoOf(link), closeCode === CloseCode.Replaced);
  }
}

function infoOf(link: Link): TunnelInfo {
  return { id: link.id, address: link.address, client: link.client, transport: link.wire.transport, edge: link.edge };
}
