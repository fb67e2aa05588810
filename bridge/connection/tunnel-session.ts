/**
 * What both transports of the bridge's end share (tunnel-dialer.ts chooses one): the errors a
 * tunnel ends with, the refusals and close codes they are read from, and the HTTP/2 server the
 * bridge runs on whatever carries it. The bridge is the HTTP/2 *server* even though it dials
 * out: the proxy (client) opens one stream per relayed request, so multiplexing, flow control
 * and cancellation are HTTP/2's.
 */
import tls from 'node:tls';
import http2, { type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { HeartbeatOptions } from './heartbeat.js';
import { CloseCode, parseReplacedReason, TUNNEL_EXPIRES_HEADER, TUNNEL_ID_HEADER, UPDATE_REQUIRED_STATUS, type TunnelTransport } from './protocol.js';

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
  /** Dial timeout for the upgrade handshake. */
  handshakeTimeoutMs?: number;
  /** Extra CA certificate(s) (PEM) to trust for wss:// besides the system's: a self-signed or private-CA cloud. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Advertised protocol version; only tests change it. */
  protocolVersion?: number;
  /** This computer's name (MACHINE_HEADER); none makes the proxy use DEFAULT_MACHINE_NAME. */
  machine?: string;
  /**
   * Only this transport (bridge CLI `--transport`); by default `h2`, falling back to `websocket`
   * where the proxy or a middlebox does not take it (tunnel-dialer.ts).
   */
  transport?: TunnelTransport;
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
  /** How the tunnel's HTTP/2 travels on this connection. */
  readonly transport: TunnelTransport;
  close(reason?: string): void;
}

/** Node's `ca` replaces the default roots: keep them, add the extra ones. */
export function trustedCas(ca: DialOptions['ca']): { ca?: Array<string | Buffer> } {
  return ca === undefined ? {} : { ca: [...tls.rootCertificates, ...(Array.isArray(ca) ? ca : [ca])] };
}

/** The tunnel as the proxy's 101 answer names it. */
export function tunnelOf(headers: IncomingHttpHeaders): { id: string; expiresAt?: number } | undefined {
  const id = headers[TUNNEL_ID_HEADER];
  const expires = Number(headers[TUNNEL_EXPIRES_HEADER]);
  return typeof id === 'string' && id ? { id, ...(Number.isFinite(expires) && expires > 0 ? { expiresAt: expires } : {}) } : undefined;
}

function errorMessageOf(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    return typeof parsed.error === 'string' ? parsed.error : undefined;
  } catch {
    return undefined;
  }
}

/** The error a refusal of the upgrade (any answer but 101) stands for. */
export function refusalError(status: number, body: string): TunnelError {
  const message = errorMessageOf(body) ?? `the proxy answered HTTP ${status}`;
  // The proxy's message already starts with "update required: "; a bare 426 gets it added.
  if (status === UPDATE_REQUIRED_STATUS) return new TunnelError('update-required', /^update required: /.test(message) ? message : `update required: ${message}`, true);
  if (status === 401) return new TunnelError('unauthorized', `the proxy refused the bridge's credentials: ${message}`);
  if (status === 403) return new TunnelError('forbidden', `the proxy refused this bridge: ${message}`);
  return new TunnelError('refused', `the proxy refused the connection (HTTP ${status}): ${message}`);
}

/** What one of our close codes says; undefined for any other code (then the cause is found elsewhere). */
export function closeCodeError(code: number, reason: string): TunnelError | undefined {
  if (code === CloseCode.Replaced) {
    const by = parseReplacedReason(reason);
    const who = by ? `from ${by.address} at ${new Date(by.at).toISOString()}` : reason;
    return new TunnelError('replaced', `another bridge of this account with the same computer name connected ${who}; give each computer its own name (--name), and if that was not you, sign out everywhere and sign in again`, true, by);
  }
  if (code === CloseCode.CredentialExpired) return new TunnelError('credential-expired', `the tunnel's credential expired without renewal (${reason})`);
  if (code === CloseCode.ProxyStopping) return new TunnelError('closed', `the proxy is stopping: ${reason}`);
  if (code === CloseCode.OwnerMoved) return new TunnelError('closed', `the cloud moved this account to another of its nodes: ${reason}`);
  return undefined;
}

/**
 * A connection's one ending, whichever way it comes: `end(cause)` releases what the connection
 * holds (once) and settles `closed` with the first cause.
 */
export function oneEnding(release: () => void): { closed: Promise<TunnelError>; end: (cause: TunnelError) => void } {
  let resolveClosed!: (e: TunnelError) => void;
  const closed = new Promise<TunnelError>((r) => (resolveClosed = r));
  let ended = false;
  return {
    closed,
    end(cause) {
      if (ended) return;
      ended = true;
      release();
      resolveClosed(cause);
    },
  };
}

/**
 * Serves HTTP/2 on `carrier` (the socket itself, or a WebSocket's stream). `onSessionError` hears
 * HTTP/2 failing (garbage from the proxy); returns the server, whose one session is `session()`.
 */
export function serveHttp2(
  carrier: Duplex,
  onStream: DialOptions['onStream'],
  onSessionError: (e: Error) => void,
): { server: Http2Server; session: () => Http2Session | undefined } {
  const server: Http2Server = http2.createServer({
    settings: { initialWindowSize: STREAM_WINDOW_BYTES, maxConcurrentStreams: 1000, enablePush: false },
    maxSessionMemory: 64,
    // Relayed requests may legitimately stay silent for minutes (model load).
    // (Http2Server has no per-stream timeout by default; keep it that way.)
  });
  let session: Http2Session | undefined;
  server.on('session', (s) => {
    session = s;
    s.on('localSettings', () => s.setLocalWindowSize(SESSION_WINDOW_BYTES));
    s.on('error', onSessionError);
  });
  server.on('stream', (stream, headers) => onStream(stream, headers));
  server.on('sessionError', onSessionError);
  server.emit('connection', carrier);
  return { server, session: () => session };
}
