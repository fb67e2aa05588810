/**
 * Detects a dead WebSocket peer. TCP alone can take many minutes to notice a peer that vanished
 * (laptop lid closed, NAT entry expired), and a half-dead tunnel looks connected while every
 * request hangs. Each side pings on an interval; any frame received counts as life, so a long
 * upload that delays a pong behind data is not mistaken for death.
 */
import type { Http2Session } from 'node:http2';
import type WebSocket from 'ws';

export interface HeartbeatOptions {
  /** How often to ping. */
  intervalMs: number;
  /** Silence after which the peer is declared dead. interval + timeout bounds detection. */
  timeoutMs: number;
}

/** Detection within 30 s, as the product promises: ping every 10 s, dead after 20 s of silence. */
export const DEFAULT_HEARTBEAT: HeartbeatOptions = { intervalMs: 10_000, timeoutMs: 20_000 };

/**
 * Starts pinging `ws`; calls `onDead` once when the peer has been silent for too long.
 * Returns a function that stops the heartbeat.
 */
export function startHeartbeat(
  ws: WebSocket,
  options: HeartbeatOptions,
  onDead: (silentForMs: number) => void,
): () => void {
  let lastHeard = Date.now();
  const heard = (): void => {
    lastHeard = Date.now();
  };
  ws.on('pong', heard);
  ws.on('ping', heard);
  ws.on('message', heard);
  const timer = setInterval(() => {
    const silentFor = Date.now() - lastHeard;
    if (silentFor >= options.timeoutMs) {
      stop();
      onDead(silentFor);
      return;
    }
    if (ws.readyState === ws.OPEN) ws.ping();
  }, Math.max(10, Math.min(options.intervalMs, options.timeoutMs)));
  timer.unref();
  function stop(): void {
    clearInterval(timer);
    ws.off('pong', heard);
    ws.off('ping', heard);
    ws.off('message', heard);
  }
  return stop;
}

/**
 * The same on the `h2` transport, where HTTP/2 runs on the socket itself: HTTP/2 PINGs instead of
 * WebSocket ones, and any byte read from the socket counts as life (read from its counter, as
 * native HTTP/2 consumes the socket and no 'data' events are left to listen to). `onHeard` is
 * told the bytes that arrived since the last tick (the proxy's idle clock reads them).
 */
export function startSessionHeartbeat(
  session: Http2Session,
  socket: { readonly bytesRead: number },
  options: HeartbeatOptions,
  onDead: (silentForMs: number) => void,
  onHeard: (bytes: number) => void = () => {},
): () => void {
  let lastHeard = Date.now();
  let lastBytes = socket.bytesRead;
  const timer = setInterval(() => {
    const bytes = socket.bytesRead;
    if (bytes > lastBytes) {
      onHeard(bytes - lastBytes);
      lastBytes = bytes;
      lastHeard = Date.now();
    }
    const silentFor = Date.now() - lastHeard;
    if (silentFor >= options.timeoutMs) {
      stop();
      onDead(silentFor);
      return;
    }
    if (session.destroyed || session.closed) return;
    try {
      session.ping(() => {
        /* the answer is read from the byte counter; a failed ping is a silence like any other */
      });
    } catch {
      /* too many unanswered pings in flight, or the session is ending: silence decides */
    }
  }, Math.max(10, Math.min(options.intervalMs, options.timeoutMs)));
  timer.unref();
  function stop(): void {
    clearInterval(timer);
  }
  return stop;
}
