/**
 * The hop from the api-backend a request reached to the api-backend that owns its user, over
 * mutual TLS (peer-tls.ts). The request goes on as it came, streaming both ways with
 * backpressure, but the user's token stays here: the owner learns who the user is from the
 * identity headers (cluster-identity.ts), which it believes from an authenticated peer only.
 * A client key does travel (its secret is checked by the owner's streaming proxy).
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { relayableRequestHeaders, relayableResponseHeaders } from '@cloudtolocalllm/bridge/connection/headers';
import { readSmallBody } from '@cloudtolocalllm/bridge/connection/small-body';
import { PASSED_HEADERS, replayedUpgrade, responseHead, splice, switchedTo, type BridgeSplice, type SpliceEvents } from '../api/bridge-forward.js';
import { endSocket, rawHttpError } from '../proxy/ollama-errors.js';
import { hasBody } from '../proxy/relay.js';
import { copyAnswer } from '../relayed-head.js';
import type { Member } from './owner-map.js';

export interface PeerHop {
  owner: Member;
  agent: https.Agent;
  /** The identity headers (cluster-identity.ts), and a client key's Authorization when there is one. */
  headers: Record<string, string>;
  /** Told the error's code when the hop fails before the owner answered (peer-liveness.ts counts it). */
  unreachable?: (code: string | undefined) => void;
}

function hostAndPort(member: Member): { host: string; port: number } {
  const at = member.lastIndexOf(':');
  return { host: member.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(member.slice(at + 1)) };
}

/** Forwards one HTTP request to the owner; `refuse` answers when the owner cannot be reached. */
export function forwardRequestToPeer(req: IncomingMessage, res: ServerResponse, hop: PeerHop, refuse: (message: string) => void): void {
  const headers = { ...relayableRequestHeaders(req.headers), ...hop.headers };
  // Node frames a GET, HEAD or DELETE body only when told to; the client's own framing is hop-by-hop.
  if (hasBody(req.headers) && headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
  const upstream = https.request({ ...hostAndPort(hop.owner), method: req.method, path: req.url ?? '/', headers, agent: hop.agent });
  req.pipe(upstream);
  upstream.on('response', (answer) => {
    res.writeHead(answer.statusCode ?? 502, relayableResponseHeaders(answer.headers));
    const head = copyAnswer(answer, res);
    answer.on('end', () => {
      if (answer.complete) res.end();
    });
    // The owner cut its answer: cut ours too, never end it cleanly (as ollama-forward.ts does).
    answer.on('close', () => {
      if (answer.complete) return;
      head.send();
      if (res.socket && !res.socket.destroyed) res.socket.destroySoon();
      else res.destroy();
    });
    answer.on('error', () => undefined);
  });
  upstream.on('error', (e: NodeJS.ErrnoException) => {
    if (!res.headersSent) hop.unreachable?.(e.code);
    if (!res.headersSent) refuse(`the cloud node that serves your account did not answer (${e.code ?? e.message}); try again`);
    else res.destroy();
  });
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
}

/** Forwards a bridge's upgrade (either transport) to the owner and splices the two once it answers 101. */
export function forwardUpgradeToPeer(req: IncomingMessage, socket: Duplex, head: Buffer, hop: PeerHop, events: SpliceEvents): BridgeSplice {
  const headers: Record<string, string> = { connection: 'Upgrade', upgrade: replayedUpgrade(req) ?? 'websocket', ...hop.headers };
  for (const name of PASSED_HEADERS) {
    const v = req.headers[name];
    if (typeof v === 'string') headers[name] = v;
  }
  const upstreamReq = https.request({ ...hostAndPort(hop.owner), method: 'GET', path: req.url ?? '/', headers, agent: hop.agent });
  let spliced: BridgeSplice | undefined;
  let upgraded = false;
  upstreamReq.on('upgrade', (res, upstream, upstreamHead) => {
    upgraded = true;
    if (socket.destroyed) return void upstream.destroy();
    // A bridge's frames are small and latency-bound: Nagle's wait on the peer's TLS socket
    // would hold each behind the previous one's ACK (delayed ACK: ~40 ms a request).
    upstream.setNoDelay(true);
    socket.write(responseHead(res.statusCode ?? 101, res.statusMessage ?? 'Switching Protocols', res.rawHeaders));
    spliced = splice(socket, upstream, head, upstreamHead, events, switchedTo(res));
  });
  // The owner refused (limits, its proxy failing to start): the bridge gets that answer as it was.
  upstreamReq.on('response', (res) => {
    void readSmallBody(res, 8192).then((body) => {
      const kept = relayableResponseHeaders(res.headers);
      delete kept['content-length'];
      const raw = Object.entries(kept).flatMap(([k, v]) => [k, String(v)]);
      endSocket(socket, responseHead(res.statusCode ?? 502, res.statusMessage ?? '', [...raw, 'Content-Length', String(Buffer.byteLength(body)), 'Connection', 'close']) + body);
    });
  });
  upstreamReq.on('error', (e: NodeJS.ErrnoException) => {
    if (!upgraded) hop.unreachable?.(e.code);
    endSocket(socket, rawHttpError('peer-unreachable', `the cloud node that serves your account did not answer (${e.code ?? e.message}); the bridge will retry`));
  });
  socket.on('close', () => {
    if (!upgraded) upstreamReq.destroy();
  });
  upstreamReq.end();
  return { cut: (code, reason) => (spliced ? spliced.cut(code, reason) : socket.destroy()) };
}
