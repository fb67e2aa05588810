/**
 * The proxy's tunnels as a stream of events, for the api-backend (docs/edge-routing.md, "the
 * bridge"): where nginx sends a bridge's upgrade straight to this proxy, the api-backend holds no
 * socket of it, so it learns here what it learns from a spliced one: each tunnel opening and
 * closing, for its audit lines, its bridge count (idle cleanup, the status's bridgeConnected) and
 * `ctll_bridges_connected`.
 *
 *   GET PROXY_LINKS_PATH, Authorization: Bearer <the proxy's secret>
 *   → 200 application/x-ndjson, one LinkEvent per line: an `open` for every tunnel open now,
 *     then `ready`, then each `open` and `close` as it happens, and a `ping` every
 *     LINK_EVENTS_PING_MS so that a watch can tell a silent proxy from a quiet one.
 *
 * Nothing of the user's traffic is in it: tunnel ids, computer names, the address and client the
 * bridge connected with, as the audit lines hold them.
 */
import type { ServerResponse } from 'node:http';
import type { TunnelTransport } from '@cloudtolocalllm/bridge/connection/protocol';
import type { BridgeLinks, TunnelChange } from './bridge-links.js';

/** The proxy's route for the stream (reached by the api-backend only, with the proxy's secret). */
export const PROXY_LINKS_PATH = '/links';

/** How often an idle stream says it is alive. */
export const LINK_EVENTS_PING_MS = 20_000;

export interface OpenTunnel {
  tunnel: string;
  machine: string;
  address: string;
  client: string;
  transport: TunnelTransport;
  /** Sent straight by nginx (EDGE_TUNNEL_HEADER); the api-backend counts only these from here. */
  edge: boolean;
}

export type LinkEvent =
  | ({ event: 'open' } & OpenTunnel)
  | { event: 'close'; tunnel: string; machine: string; replaced: boolean }
  | { event: 'ready' }
  | { event: 'ping' };

function lineOf(change: TunnelChange): LinkEvent {
  const { tunnel, machine } = change;
  return change.event === 'open'
    ? { event: 'open', tunnel: tunnel.id, machine, address: tunnel.address, client: tunnel.client, transport: tunnel.transport, edge: tunnel.edge }
    : { event: 'close', tunnel: tunnel.id, machine, replaced: change.replaced };
}

/** Writes the stream to `res` until the watcher goes away; `pingMs` only for tests. */
export function serveLinkEvents(res: ServerResponse, links: BridgeLinks, pingMs = LINK_EVENTS_PING_MS): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const send = (e: LinkEvent): void => void res.write(`${JSON.stringify(e)}\n`);
  for (const c of links.list()) {
    const tunnel = c.link.tunnel;
    if (tunnel) send(lineOf({ event: 'open', machine: c.name, tunnel }));
  }
  send({ event: 'ready' });
  const onChange = (change: TunnelChange): void => send(lineOf(change));
  links.on('tunnel', onChange);
  const ping = setInterval(() => send({ event: 'ping' }), pingMs);
  ping.unref();
  res.on('close', () => {
    links.off('tunnel', onChange);
    clearInterval(ping);
  });
}
