/**
 * Joins a bridge's upgrade to the user's proxy: the upgrade request is replayed to the proxy with
 * the proxy's secret instead of the user's token, and once the proxy answers 101 the two sockets
 * are spliced. The tunnel (HTTP/2 on the socket, or inside a WebSocket) passes through untouched.
 */
import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  BRIDGE_PATH,
  CLIENT_ADDRESS_HEADER,
  CREDENTIAL_EXPIRES_HEADER,
  MACHINE_HEADER,
  MAX_MACHINES_HEADER,
  PROXY_RENEW_PATH,
  tunnelUpgradeOf,
  type TunnelTransport,
} from '@cloudtolocalllm/bridge/connection/protocol';
import { readSmallBody } from '@cloudtolocalllm/bridge/connection/small-body';
import { endSocket, rawHttpError } from '../proxy/ollama-errors.js';
import type { ForwardTarget } from './ollama-forward.js';
import { FrameCut } from './frame-cut.js';

// MACHINE_HEADER: the bridge's own claim of its computer's name, checked by the proxy (a name is
// no credential: it only chooses which of the user's own links a new one replaces).
export const PASSED_HEADERS = ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'sec-websocket-extensions', 'user-agent', MACHINE_HEADER];

/**
 * The tunnel transport a bridge's upgrade asks for, as the header to replay upstream; undefined
 * for an upgrade that is neither of ours (refused before anything is replayed).
 */
export function replayedUpgrade(req: IncomingMessage): string | undefined {
  const asked = tunnelUpgradeOf(req.headers.upgrade);
  return asked ? String(req.headers.upgrade) : undefined;
}

/** Which transport the upstream's 101 switched to: what the splice's cut must speak. */
export function switchedTo(res: IncomingMessage): TunnelTransport {
  return tunnelUpgradeOf(res.headers.upgrade)?.transport ?? 'websocket';
}

export function responseHead(statusCode: number, statusMessage: string, rawHeaders: string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  return head + '\r\n';
}

export function forwardBridgeUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: ForwardTarget,
  /**
   * What the api-backend verified: the credential's expiry (ms), where the bridge connected from,
   * and how many computers the user may connect (CTLL_MAX_BRIDGES).
   */
  terms: { expiresAt?: number; address: string; maxMachines: number },
  events: SpliceEvents,
): BridgeSplice {
  const url = new URL(target.endpoint);
  const headers: Record<string, string> = {
    connection: 'Upgrade',
    upgrade: replayedUpgrade(req) ?? 'websocket',
    authorization: `Bearer ${target.secret}`,
    [CLIENT_ADDRESS_HEADER]: terms.address,
    [MAX_MACHINES_HEADER]: String(terms.maxMachines),
    ...(terms.expiresAt !== undefined ? { [CREDENTIAL_EXPIRES_HEADER]: String(terms.expiresAt) } : {}),
  };
  for (const name of PASSED_HEADERS) {
    const v = req.headers[name];
    if (typeof v === 'string') headers[name] = v;
  }
  const upstreamReq = http.request({ hostname: url.hostname, port: url.port, path: BRIDGE_PATH, method: 'GET', headers });
  let upgraded = false;
  let spliced: BridgeSplice | undefined;
  upstreamReq.on('upgrade', (res, upstream, upstreamHead) => {
    upgraded = true;
    if (socket.destroyed) {
      upstream.destroy();
      return;
    }
    socket.write(responseHead(res.statusCode ?? 101, res.statusMessage ?? 'Switching Protocols', res.rawHeaders));
    spliced = splice(socket, upstream, head, upstreamHead, events, switchedTo(res));
  });
  // A refusal from the proxy (426 version mismatch, ...) goes back to the bridge as it was.
  upstreamReq.on('response', (res) => {
    void readSmallBody(res, 8192).then((body) => {
      const raw = res.rawHeaders.filter((_, i, a) => {
        const name = (i % 2 === 0 ? a[i] : a[i - 1]) ?? '';
        return !['connection', 'transfer-encoding', 'content-length', 'keep-alive'].includes(name.toLowerCase());
      });
      endSocket(
        socket,
        responseHead(res.statusCode ?? 502, res.statusMessage ?? '', [...raw, 'Content-Length', String(Buffer.byteLength(body)), 'Connection', 'close']) + body,
      );
    });
  });
  upstreamReq.on('error', (e: NodeJS.ErrnoException) => {
    endSocket(socket, rawHttpError('proxy-unreachable', `your cloud proxy did not answer (${e.code ?? e.message}); the bridge will retry`));
  });
  // The bridge went away before the proxy answered: give up the replayed upgrade too.
  socket.on('close', () => {
    if (!upgraded) upstreamReq.destroy();
  });
  upstreamReq.end();
  return {
    cut(code, reason) {
      if (spliced) spliced.cut(code, reason);
      else socket.destroy();
    },
  };
}

export interface SpliceEvents {
  opened(): void;
  closed(): void;
  activity(bytes: number): void;
}

/** A bridge's tunnel passing through the gateway, which may end it with a close code of its own. */
export interface BridgeSplice {
  /** Ends the tunnel with `code` (a CloseCode) between two frames, and the upstream with it. */
  cut(code: number, reason: string): void;
}

/**
 * Joins an upgraded bridge socket to its upstream (the proxy, or the owner's api-backend),
 * byte for byte both ways with pipe()'s backpressure; the upstream's frames pass a FrameCut of
 * the tunnel's transport so the gateway can end the tunnel with a close code of its own.
 */
export function splice(socket: Duplex, upstream: Duplex, head: Buffer, upstreamHead: Buffer, events: SpliceEvents, transport: TunnelTransport): BridgeSplice {
  const cutter = new FrameCut(transport);
  if (head.length) upstream.write(head);
  events.opened();
  let closed = false;
  let cutting = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    upstream.destroy();
    // After a cut the pipe has written the close frame and ended the socket: let it flush.
    if (cutting) setTimeout(() => socket.destroy(), 5_000).unref();
    else socket.destroy();
    events.closed();
  };
  upstream.on('data', (c: Buffer) => events.activity(c.length));
  socket.on('data', (c: Buffer) => events.activity(c.length));
  upstream.pipe(cutter).pipe(socket);
  if (upstreamHead.length) cutter.write(upstreamHead);
  socket.pipe(upstream);
  // The close frame went out: nothing more goes up, and the bridge is left to close its end.
  cutter.on('end', () => upstream.destroy());
  upstream.on('close', close);
  socket.on('close', close);
  upstream.on('error', close);
  socket.on('error', close);
  return {
    cut: (code, reason) => {
      cutting = true;
      cutter.cut(code, reason);
      // A proxy stuck in the middle of a frame would hold the cut for ever.
      setTimeout(() => {
        cutting = false;
        close();
        socket.destroy();
      }, 5_000).unref();
    },
  };
}

/** Tells the proxy a renewed credential's expiry for the tunnel named; answers what it answered. */
export function renewOnProxy(target: ForwardTarget, tunnel: string, expiresAt: number): Promise<{ status: number; body: unknown }> {
  const url = new URL(target.endpoint);
  const payload = JSON.stringify({ tunnel, expiresAt });
  return new Promise((resolve) => {
    const req = http.request(
      {
        hostname: url.hostname,
        port: url.port,
        path: PROXY_RENEW_PATH,
        method: 'POST',
        headers: { authorization: `Bearer ${target.secret}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: 10_000,
      },
      (res) =>
        void readSmallBody(res).then((text) => {
          try {
            resolve({ status: res.statusCode ?? 502, body: JSON.parse(text) as unknown });
          } catch {
            resolve({ status: 502, body: { error: 'your cloud proxy gave an answer that is not JSON' } });
          }
        }),
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 502, body: { error: `your cloud proxy did not answer (${e.code ?? e.message})` } }));
    req.end(payload);
  });
}
