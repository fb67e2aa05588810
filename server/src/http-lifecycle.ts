/**
 * Listen and close for the server's HTTP servers (the API and each streaming proxy). Sockets are
 * tracked because upgraded ones (bridge WebSockets) leave Node's own connection list, and a close
 * must not wait for a many-minute stream to end.
 */
import type http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** Starts tracking the server's sockets; the returned function destroys every open one. */
export function trackSockets(server: http.Server): () => void {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return () => {
    for (const socket of sockets) socket.destroy();
  };
}

/**
 * How long an idle keep-alive connection stays open here: longer than any client in front keeps
 * one, nginx's upstream pool first (`keepalive_timeout 60s`, server/deploy/nginx). With Node's
 * default of 5 s a client could send a request on a connection this server was closing in that
 * same moment: nginx answered a POST with 502 (it retries only idempotent requests), and a
 * benchmark's client saw "socket hang up". Whoever keeps an idle connection longest must be the
 * server. Node's own agents (the api-backend to a proxy or a peer) read the `Keep-Alive:
 * timeout=65` this sends and let go first.
 */
export const IDLE_CONNECTION_MS = 65_000;

/** Keeps idle keep-alive connections IDLE_CONNECTION_MS (see there). */
export function keepIdleConnections(server: http.Server): void {
  server.keepAliveTimeout = IDLE_CONNECTION_MS;
}

/** Listens and resolves with the base URL, e.g. `http://127.0.0.1:43117`. */
export async function listenUrl(server: http.Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}

/** Stops accepting, cuts every open connection, and resolves once the server is closed. */
export async function closeNow(server: http.Server, destroySockets: () => void): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  destroySockets();
  await closed;
}
