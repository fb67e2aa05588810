/**
 * The `h2` transport of the bridge's end (issue 12): one HTTP/1.1 request upgraded to
 * `cloudtolocalllm-h2/1`, then HTTP/2 straight on the TCP or TLS socket. Node's native HTTP/2
 * reads and writes that socket itself, so a relayed byte costs no WebSocket framing and no
 * JavaScript stream (the tunnel's largest cost on the WebSocket transport, docs/benchmarks.md).
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { certificateProblem } from './certificate-errors.js';
import { startSessionHeartbeat } from './heartbeat.js';
import { readSmallBody } from './small-body.js';
import { BRIDGE_USER_AGENT, goawayData, h2UpgradeFor, MACHINE_HEADER, parseGoawayData, REFUSAL_HEADER, TUNNEL_PROTOCOL_VERSION, tunnelUpgradeOf } from './protocol.js';
import { closeCodeError, oneEnding, refusalError, serveHttp2, trustedCas, tunnelOf, TunnelError, type DialOptions, type TunnelConnection } from './tunnel-session.js';

/**
 * The answer was not ours to a request for `h2`: a proxy, gateway or middlebox that does not
 * know the upgrade. The dialer then tries WebSocket (tunnel-dialer.ts).
 */
export class H2Unsupported extends Error {
  override readonly name = 'H2Unsupported';
}

/**
 * Refusals of ours that are about the upgrade itself, not about the bridge: an older proxy
 * answers `update-required` (no WebSocket subprotocol) or `websocket-required` to it. These, and
 * any answer that is not ours at all (a middlebox), mean "try WebSocket"; every other refusal of
 * ours (credentials, limits, the computer's name) would come the same way over WebSocket.
 */
const UPGRADE_NOT_TAKEN = new Set(['update-required', 'websocket-required', 'not-found', 'bad-request', 'not-http', 'method-not-allowed']);

function isDefinite(res: IncomingMessage): boolean {
  if (res.statusCode === 401 || res.statusCode === 403) return true;
  // A proxy that names the h2 upgrade in its refusal knows it: its answer holds for WebSocket too.
  if (tunnelUpgradeOf(res.headers.upgrade)?.transport === 'h2') return true;
  const refusal = res.headers[REFUSAL_HEADER];
  return typeof refusal === 'string' && !UPGRADE_NOT_TAKEN.has(refusal);
}

export function dialH2(options: DialOptions): Promise<TunnelConnection> {
  const version = options.protocolVersion ?? TUNNEL_PROTOCOL_VERSION;
  const url = new URL(options.proxyUrl);
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      reject(e);
    };
    const request = (secure ? https : http).request({
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || (secure ? 443 : 80),
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      agent: false,
      headers: {
        connection: 'Upgrade',
        upgrade: h2UpgradeFor(version),
        authorization: `Bearer ${options.token}`,
        'user-agent': BRIDGE_USER_AGENT,
        ...(options.machine !== undefined ? { [MACHINE_HEADER]: options.machine } : {}),
      },
      ...(secure ? trustedCas(options.ca) : {}),
    });
    // A middlebox that swallows an upgrade it does not know would hold the bridge for ever.
    const timer = setTimeout(() => {
      request.destroy();
      fail(new H2Unsupported(`no answer to the HTTP/2 upgrade within ${options.handshakeTimeoutMs ?? 15_000} ms`));
    }, options.handshakeTimeoutMs ?? 15_000);
    request.on('response', (res) => {
      clearTimeout(timer);
      void readSmallBody(res).then((body) => {
        request.destroy();
        const status = res.statusCode ?? 0;
        fail(isDefinite(res) ? refusalError(status, body) : new H2Unsupported(`the proxy answered the HTTP/2 upgrade with HTTP ${status}`));
      });
    });
    request.on('error', (e: Error) => {
      clearTimeout(timer);
      // Retried like a network failure (the operator may fix the certificate), but named.
      const certificate = certificateProblem(e);
      if (certificate) fail(new TunnelError('certificate', `refusing the proxy at ${options.proxyUrl}: ${certificate.message}`));
      else fail(new TunnelError('network', `cannot reach the proxy at ${options.proxyUrl}: ${e.message}`));
    });
    request.on('upgrade', (res, socket: Socket, head: Buffer) => {
      clearTimeout(timer);
      if (settled) return void socket.destroy();
      if (tunnelUpgradeOf(res.headers.upgrade)?.transport !== 'h2') {
        socket.destroy();
        return fail(new H2Unsupported(`the proxy switched to "${String(res.headers.upgrade)}" instead of HTTP/2`));
      }
      settled = true;
      resolve(serveOnSocket(socket, head, options, tunnelOf(res.headers)));
    });
    request.end();
  });
}

function serveOnSocket(socket: Socket, head: Buffer, options: DialOptions, tunnel: { id: string; expiresAt?: number } | undefined): TunnelConnection {
  // The proxy's HTTP/2 preface may have come in the same packet as its 101.
  if (head.length) socket.unshift(head);
  socket.setNoDelay(true);
  // Node's HTTP/2 server hands a TLS socket whose ALPN chose nothing to HTTP/1.1; this one's
  // protocol was chosen by the upgrade instead (the TLS ends at the cloud's edge, which speaks
  // HTTP/1.1 to reach us, so ALPN cannot say h2 here).
  if ('alpnProtocol' in socket) (socket as TLSSocket).alpnProtocol = null;

  let stopHeartbeat = (): void => {};
  /** The close code and reason the proxy (or the gateway) sent in its GOAWAY, the first one. */
  let told: TunnelError | undefined;
  let toldCode: string | undefined;
  let protocolError: TunnelError | undefined;
  const { closed, end } = oneEnding(() => {
    stopHeartbeat();
    served.session()?.destroy();
    served.server.close();
    socket.destroy();
  });
  /** Why it ended: what the GOAWAY said, else HTTP/2's own failure, else a plain close. */
  const cause = (): TunnelError => told ?? protocolError ?? new TunnelError('closed', `the connection to the proxy closed (${toldCode ?? 'no reason given'})`);
  const served = serveHttp2(socket, options.onStream, (e) => {
    protocolError ??= new TunnelError('protocol', `HTTP/2 on the tunnel failed: ${e.message}`);
  });
  const session = served.session();
  if (!session) {
    // Node creates the session inside emit('connection'); without one the socket was refused.
    end(new TunnelError('protocol', 'HTTP/2 could not start on the tunnel'));
  } else {
    session.on('goaway', (errorCode: number, _last: number, data?: Buffer) => {
      if (told || toldCode !== undefined) return;
      const close = parseGoawayData(data);
      if (close) {
        told = closeCodeError(close.code, close.reason);
        toldCode = `code ${close.code}: ${close.reason}`;
      } else toldCode = `HTTP/2 error code ${errorCode}`;
    });
    // The session ends after the GOAWAY that says why, or an error, or the socket closing under it.
    session.on('close', () => end(cause()));
    stopHeartbeat = startSessionHeartbeat(session, socket, options.heartbeat, (silent) => {
      end(new TunnelError('heartbeat-timeout', `the proxy stopped answering (silent for ${Math.round(silent / 1000)} s)`));
    });
  }
  socket.on('close', () => setImmediate(() => end(cause())));
  return {
    closed,
    transport: 'h2',
    ...(tunnel ? { tunnel } : {}),
    close(reason = 'bridge stopping') {
      const s = served.session();
      if (s && !s.destroyed) s.goaway(0, 0, goawayData(1000, reason));
      end(new TunnelError('closed', reason));
    },
  };
}
