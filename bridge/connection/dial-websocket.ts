/**
 * The `websocket` transport of the bridge's end: HTTP/2 inside WebSocket messages. The fallback
 * where the proxy or a middlebox takes nothing but WebSocket (tunnel-dialer.ts chooses).
 */
import WebSocket, { createWebSocketStream } from 'ws';
import { certificateProblem } from './certificate-errors.js';
import { startHeartbeat } from './heartbeat.js';
import { readSmallBody } from './small-body.js';
import { BRIDGE_USER_AGENT, MACHINE_HEADER, subprotocolFor, TUNNEL_PROTOCOL_VERSION } from './protocol.js';
import { closeCodeError, oneEnding, refusalError, serveHttp2, trustedCas, tunnelOf, TunnelError, type DialOptions, type TunnelConnection } from './tunnel-session.js';

/** Opens the tunnel; resolves once the WebSocket is open and HTTP/2 is being served on it. */
export function dialWebSocket(options: DialOptions): Promise<TunnelConnection> {
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
      ...trustedCas(options.ca),
    });
    // Created synchronously, before any frame can arrive: a frame that arrives before the
    // stream exists would be lost, and HTTP/2 would then fail on a bad preface.
    const duplex = createWebSocketStream(ws);
    duplex.on('error', () => {
      /* the WebSocket's own close/error events report it */
    });
    let settled = false;
    let tunnel: { id: string; expiresAt?: number } | undefined;
    ws.on('upgrade', (res) => (tunnel = tunnelOf(res.headers)));

    ws.on('unexpected-response', (_req, res) => {
      void readSmallBody(res).then((body) => {
        ws.terminate();
        if (!settled) {
          settled = true;
          reject(refusalError(res.statusCode ?? 0, body));
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
      let stopHeartbeat = (): void => {};
      const { closed, end } = oneEnding(() => {
        stopHeartbeat();
        served.session()?.destroy();
        served.server.close();
        if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate();
      });

      // Which failure is the cause when HTTP/2 and the WebSocket under it fail together: a close
      // code of ours (another bridge took over, the proxy stops) says why; otherwise an HTTP/2
      // error is the cause (garbage from the proxy makes HTTP/2 fail, which closes the WebSocket),
      // and a session error that only follows a closing WebSocket is not.
      let protocolError: TunnelError | undefined;
      const served = serveHttp2(duplex, options.onStream, (e) => {
        const error = new TunnelError('protocol', `HTTP/2 on the tunnel failed: ${e.message}`);
        if (ws.readyState === ws.OPEN) end(error);
        else protocolError ??= error;
      });

      stopHeartbeat = startHeartbeat(ws, options.heartbeat, (silent) => {
        end(new TunnelError('heartbeat-timeout', `the proxy stopped answering (silent for ${Math.round(silent / 1000)} s)`));
      });

      ws.on('close', (code: number, reasonBuf: Buffer) => {
        const reason = reasonBuf.toString() || 'no reason given';
        // Our own close codes say why at once; anything else may be HTTP/2 reporting its own failure
        // just after the close it caused: give it that moment.
        const ours = closeCodeError(code, reason);
        if (ours) return end(ours);
        setImmediate(() => end(protocolError ?? new TunnelError('closed', `the connection to the proxy closed (code ${code}: ${reason})`)));
      });
      ws.on('error', (e: Error) => end(new TunnelError('network', `the connection to the proxy failed: ${e.message}`)));

      resolve({
        closed,
        transport: 'websocket',
        ...(tunnel ? { tunnel } : {}),
        close(reason = 'bridge stopping') {
          if (ws.readyState === ws.OPEN) ws.close(1000, reason);
          end(new TunnelError('closed', reason));
        },
      });
    });
  });
}
