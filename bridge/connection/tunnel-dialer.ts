/**
 * The bridge's end of the wire: dials the proxy's WebSocket and serves HTTP/2 over it.
 * The bridge is the HTTP/2 *server* even though it dials out: the proxy (client) opens one
 * stream per relayed request, so multiplexing, flow control and cancellation are HTTP/2's.
 */
import tls from 'node:tls';
import http2, { type Http2Session, type Http2Server, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import WebSocket, { createWebSocketStream } from 'ws';
import { certificateProblem } from './certificate-errors.js';
import { startHeartbeat, type HeartbeatOptions } from './heartbeat.js';
import { readSmallBody } from './small-body.js';
import {
  BRIDGE_USER_AGENT,
  CloseCode,
  MACHINE_HEADER,
  parseReplacedReason,
  subprotocolFor,
  TUNNEL_EXPIRES_HEADER,
  TUNNEL_ID_HEADER,
  TUNNEL_PROTOCOL_VERSION,
  UPDATE_REQUIRED_STATUS,
} from './protocol.js';

/** Flow-control windows: large enough for fast uploads, bounded so memory stays bounded. */
export const STREAM_WINDOW_BYTES = 1 << 20;
export const SESSION_WINDOW_BYTES = 16 << 20;

/** Why a connection attempt or a connection ended; `fatal` ones are not retried automatically. */
export class TunnelError extends Error {
  constructor(
    readonly code:
      | 'update-required'
      | 'unauthorized'
      | 'forbidden'
      | 'refused'
      | 'network'
      | 'certificate'
      | 'replaced'
      | 'heartbeat-timeout'
      | 'protocol'
      | 'credential-expired'
      | 'closed',
    message: string,
    readonly fatal = false,
    /** For `replaced`: who took the line over, as the cloud saw it. */
    readonly replacedBy?: { address: string; at: number },
  ) {
    super(message);
    this.name = 'TunnelError';
  }
}

export interface DialOptions {
  proxyUrl: string;
  token: string;
  heartbeat: HeartbeatOptions;
  /** Called for each relayed request. */
  onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void;
  /** Dial timeout for the WebSocket handshake. */
  handshakeTimeoutMs?: number;
  /** Extra CA certificate(s) (PEM) to trust for wss:// besides the system's: a self-signed or private-CA cloud. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Advertised protocol version; only tests change it. */
  protocolVersion?: number;
  /** This computer's name (MACHINE_HEADER); none makes the proxy use DEFAULT_MACHINE_NAME. */
  machine?: string;
}

export interface TunnelConnection {
  /** Resolves once, with the reason the connection ended. */
  readonly closed: Promise<TunnelError>;
  /**
   * The tunnel as the proxy named it in its 101 answer: its id, and when its credential expires
   * (a tunnel behind the cloud server lives only until then unless renewed). None from a proxy
   * run alone with a static token.
   */
  readonly tunnel?: { id: string; expiresAt?: number };
  close(reason?: string): void;
}

function errorMessageOf(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    return typeof parsed.error === 'string' ? parsed.error : undefined;
  } catch {
    return undefined;
  }
}

/** Opens the tunnel; resolves once the WebSocket is open and HTTP/2 is being served on it. */
export function dialTunnel(options: DialOptions): Promise<TunnelConnection> {
  const version = options.protocolVersion ?? TUNNEL_PROTOCOL_VERSION;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(options.proxyUrl, [subprotocolFor(version)], {
      headers: {
        authorization: `Bearer ${options.token}`,
        'user-agent': BRIDGE_USER_AGENT,
        ...(options.machine !== undefined ? { [MACHINE_HEADER]: options.machine } : {}),
      },
      perMessageDeflate: false, // compression would buffer token lines and cost CPU
      handshakeTimeout: options.handshakeTimeoutMs ?? 15_000,
      maxPayload: 64 << 20,
      // Node's `ca` replaces the default roots: keep them, add the extra ones.
      ...(options.ca !== undefined ? { ca: [...tls.rootCertificates, ...(Array.isArray(options.ca) ? options.ca : [options.ca])] } : {}),
    });
    // Created synchronously, before any frame can arrive: a frame that arrives before the
    // stream exists would be lost, and HTTP/2 would then fail on a bad preface.
    const duplex = createWebSocketStream(ws);
    duplex.on('error', () => {
      /* the WebSocket's own close/error events report it */
    });
    let settled = false;
    let tunnel: { id: string; expiresAt?: number } | undefined;
    ws.on('upgrade', (res) => {
      const id = res.headers[TUNNEL_ID_HEADER];
      const expires = Number(res.headers[TUNNEL_EXPIRES_HEADER]);
      if (typeof id === 'string' && id) tunnel = { id, ...(Number.isFinite(expires) && expires > 0 ? { expiresAt: expires } : {}) };
    });

    ws.on('unexpected-response', (_req, res) => {
      void readSmallBody(res).then((body) => {
        const message = errorMessageOf(body) ?? `the proxy answered HTTP ${res.statusCode}`;
        const status = res.statusCode ?? 0;
        let err: TunnelError;
        // The proxy's message already starts with "update required: "; a bare 426 gets it added.
        if (status === UPDATE_REQUIRED_STATUS) err = new TunnelError('update-required', /^update required: /.test(message) ? message : `update required: ${message}`, true);
        else if (status === 401) err = new TunnelError('unauthorized', `the proxy refused the bridge's credentials: ${message}`);
        else if (status === 403) err = new TunnelError('forbidden', `the proxy refused this bridge: ${message}`);
        else err = new TunnelError('refused', `the proxy refused the connection (HTTP ${status}): ${message}`);
        ws.terminate();
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
    });
    ws.on('error', (e: Error) => {
      if (!settled) {
        settled = true;
        // Retried like a network failure (the operator may fix the certificate), but named.
        const certificate = certificateProblem(e);
        if (certificate) reject(new TunnelError('certificate', `refusing the proxy at ${options.proxyUrl}: ${certificate.message}`));
        else reject(new TunnelError('network', `cannot reach the proxy at ${options.proxyUrl}: ${e.message}`));
      }
    });

    ws.on('open', () => {
      settled = true;
      const server: Http2Server = http2.createServer({
        settings: { initialWindowSize: STREAM_WINDOW_BYTES, maxConcurrentStreams: 1000, enablePush: false },
        maxSessionMemory: 64,
        // Relayed requests may legitimately stay silent for minutes (model load).
        // (Http2Server has no per-stream timeout by default; keep it that way.)
      });
      let session: Http2Session | undefined;
      let resolveClosed!: (e: TunnelError) => void;
      const closed = new Promise<TunnelError>((r) => (resolveClosed = r));
      let ended = false;
      let stopHeartbeat = (): void => {};
      const end = (err: TunnelError): void => {
        if (ended) return;
        ended = true;
        stopHeartbeat();
        session?.destroy();
        server.close();
        if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate();
        resolveClosed(err);
      };

      // Which failure is the cause when HTTP/2 and the WebSocket under it fail together: a close
      // code of ours (another bridge took over, the proxy stops) says why; otherwise an HTTP/2
      // error is the cause (garbage from the proxy makes HTTP/2 fail, which closes the WebSocket),
      // and a session error that only follows a closing WebSocket is not.
      let protocolError: TunnelError | undefined;
      const onProtocolError = (e: Error): void => {
        const error = new TunnelError('protocol', `HTTP/2 on the tunnel failed: ${e.message}`);
        if (ws.readyState === ws.OPEN) end(error);
        else protocolError ??= error;
      };
      server.on('session', (s) => {
        session = s;
        s.on('localSettings', () => s.setLocalWindowSize(SESSION_WINDOW_BYTES));
        s.on('error', onProtocolError);
        s.on('goaway', () => {
          /* the proxy will close the WebSocket right after */
        });
      });
      server.on('stream', (stream, headers) => options.onStream(stream, headers));
      server.on('sessionError', onProtocolError);
      server.emit('connection', duplex);

      stopHeartbeat = startHeartbeat(ws, options.heartbeat, (silent) => {
        end(new TunnelError('heartbeat-timeout', `the proxy stopped answering (silent for ${Math.round(silent / 1000)} s)`));
      });

      ws.on('close', (code: number, reasonBuf: Buffer) => {
        const reason = reasonBuf.toString() || 'no reason given';
        // Our own close codes say why at once; anything else may be HTTP/2 reporting its own failure
        // just after the close it caused: give it that moment.
        if (code === CloseCode.Replaced) {
          const by = parseReplacedReason(reason);
          const who = by ? `from ${by.address} at ${new Date(by.at).toISOString()}` : reason;
          return end(new TunnelError('replaced', `another bridge of this account with the same computer name connected ${who}; give each computer its own name (--name), and if that was not you, sign out everywhere and sign in again`, true, by));
        }
        if (code === CloseCode.CredentialExpired) return end(new TunnelError('credential-expired', `the tunnel's credential expired without renewal (${reason})`));
        if (code === CloseCode.ProxyStopping) return end(new TunnelError('closed', `the proxy is stopping: ${reason}`));
        if (code === CloseCode.OwnerMoved) return end(new TunnelError('closed', `the cloud moved this account to another of its nodes: ${reason}`));
        setImmediate(() => end(protocolError ?? new TunnelError('closed', `the connection to the proxy closed (code ${code}: ${reason})`)));
      });
      ws.on('error', (e: Error) => end(new TunnelError('network', `the connection to the proxy failed: ${e.message}`)));

      resolve({
        closed,
        ...(tunnel ? { tunnel } : {}),
        close(reason = 'bridge stopping') {
          if (ws.readyState === ws.OPEN) ws.close(1000, reason);
          end(new TunnelError('closed', reason));
        },
      });
    });
  });
}
