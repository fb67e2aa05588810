/**
 * The proxy's end of the wire: the one bridge WebSocket of this proxy's user, with an HTTP/2
 * client session running over it. Each relayed request is one HTTP/2 stream on that session.
 */
import { EventEmitter } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import { createWebSocketStream, type WebSocket } from 'ws';
import { startHeartbeat, type HeartbeatOptions } from '../../../bridge/connection/heartbeat.js';
import { CloseCode, TUNNEL_AUTHORITY } from '../../../bridge/connection/protocol.js';
import type { Logger } from '../log.js';

/** Mirrors the bridge's windows (bridge/connection/tunnel-dialer.ts). */
const STREAM_WINDOW_BYTES = 1 << 20;
const SESSION_WINDOW_BYTES = 16 << 20;

interface Link {
  ws: WebSocket;
  session: ClientHttp2Session;
  connectedAt: number;
  stopHeartbeat: () => void;
}

export interface BridgeLinkEvents {
  connected: [];
  disconnected: [reason: string];
  activity: [];
}

export class BridgeLink extends EventEmitter<BridgeLinkEvents> {
  private link: Link | undefined;

  constructor(
    private readonly heartbeat: HeartbeatOptions,
    private readonly log: Logger,
  ) {
    super();
  }

  get connected(): boolean {
    return this.link !== undefined && !this.link.session.destroyed;
  }

  get connectedSince(): number | undefined {
    return this.link?.connectedAt;
  }

  /** Takes a freshly upgraded bridge WebSocket; a previous bridge of the same user is replaced. */
  attach(ws: WebSocket): void {
    // Created synchronously: a frame arriving before the stream exists would be lost.
    const duplex = createWebSocketStream(ws);
    duplex.on('error', () => {
      /* reported by the WebSocket and the session */
    });
    if (this.link) {
      this.drop(this.link, 'replaced by a newer bridge connection', CloseCode.Replaced);
    }
    const session = http2.connect(`http://${TUNNEL_AUTHORITY}`, {
      createConnection: () => duplex,
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false },
      maxSessionMemory: 64,
      // Many-minute generations are normal: no idle timeout on the session.
    });
    const link: Link = { ws, session, connectedAt: Date.now(), stopHeartbeat: () => {} };
    this.link = link;
    session.on('localSettings', () => session.setLocalWindowSize(SESSION_WINDOW_BYTES));
    session.on('error', (e: Error) => {
      this.log.warn('bridge spoke invalid HTTP/2; dropping it', { error: e.message });
      this.drop(link, 'the bridge sent data that is not valid HTTP/2', 1002);
    });
    session.on('close', () => this.drop(link, 'the tunnel session closed'));
    ws.on('message', () => this.emit('activity'));
    ws.on('close', (code: number) => this.drop(link, `the bridge disconnected (code ${code})`));
    ws.on('error', (e: Error) => this.drop(link, `the bridge connection failed: ${e.message}`));
    link.stopHeartbeat = startHeartbeat(ws, this.heartbeat, (silent) => {
      this.drop(link, `the bridge stopped answering heartbeats (silent for ${Math.round(silent / 1000)} s)`, CloseCode.HeartbeatTimeout);
    });
    this.log.info('bridge connected');
    this.emit('connected');
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

  private drop(link: Link, reason: string, closeCode?: number): void {
    if (this.link !== link) return;
    this.link = undefined;
    link.stopHeartbeat();
    link.session.destroy();
    if (closeCode !== undefined && link.ws.readyState === link.ws.OPEN) {
      link.ws.close(closeCode, reason.slice(0, 120));
      // A peer that does not complete the closing handshake must not keep the socket.
      setTimeout(() => link.ws.terminate(), 2_000).unref();
    } else {
      link.ws.terminate();
    }
    this.log.info('bridge disconnected', { reason });
    this.emit('disconnected', reason);
  }
}
