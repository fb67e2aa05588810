/**
 * The bridge's end of the wire: dials the proxy and serves HTTP/2 on what it gets. Two
 * transports (protocol.ts): `h2`, HTTP/2 straight on the socket after one HTTP upgrade, and
 * `websocket`, HTTP/2 inside WebSocket messages. `h2` is tried first; where the proxy or a
 * middlebox does not take it, the same dial goes on over WebSocket, and that choice is kept for
 * the proxy's URL for the life of the process (cloudflared likewise falls back from QUIC to
 * HTTP/2 and keeps to it).
 */
import { dialH2, H2Unsupported } from './dial-h2.js';
import { dialWebSocket } from './dial-websocket.js';
import type { TunnelTransport } from './protocol.js';
import { TunnelError, type DialOptions, type TunnelConnection } from './tunnel-session.js';

export { STREAM_WINDOW_BYTES, SESSION_WINDOW_BYTES, TunnelError, type DialOptions, type TunnelConnection } from './tunnel-session.js';

/** The proxy URLs where `h2` was not taken and WebSocket was, for this process's life. */
const fellBack = new Set<string>();

/** Opens the tunnel; resolves once HTTP/2 is being served on it. */
export async function dialTunnel(options: DialOptions): Promise<TunnelConnection> {
  const wanted: TunnelTransport = options.transport ?? (fellBack.has(options.proxyUrl) ? 'websocket' : 'h2');
  if (wanted === 'websocket') return dialWebSocket(options);
  try {
    return await dialH2(options);
  } catch (e) {
    if (!(e instanceof H2Unsupported)) throw e;
    if (options.transport === 'h2') throw new TunnelError('refused', `the proxy did not take the HTTP/2 transport (${e.message}); --transport websocket, or none, lets the bridge use WebSocket`);
    const connection = await dialWebSocket(options);
    fellBack.add(options.proxyUrl);
    return connection;
  }
}
