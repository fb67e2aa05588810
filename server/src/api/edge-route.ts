/**
 * Edge routing (docs/edge-routing.md): nginx asks, once per `/ollama/*` request, where it should
 * go (`auth_request`), and then relays it itself, so the api-backend's Node relay leaves the byte
 * path of most requests:
 *
 *   client → nginx ──(auth_request: GET EDGE_ROUTE_PATH, headers only)──→ api-backend edge port
 *            nginx ──(the whole request and its answer)──→ the user's proxy          (direct)
 *            nginx ──(the whole request, as before)──→ the api-backend's /ollama     (through)
 *
 * The answer is `direct` only when the api-backend would have forwarded the request untouched:
 * a sign-in token verified (or a client key the proxy accepted a moment ago: accepted-keys.ts),
 * the user served on this node with a running proxy, an Ollama API path, the request's rate
 * token taken, and a body of a declared length the user's byte bucket lets pass at once.
 * Anything else (a key not accepted lately, a browser origin that needs CORS, a refusal of any
 * kind, a body the gate would slow) goes `through`: the api-backend then does all of it
 * itself, counts it, and answers every refusal exactly as without edge routing. Deciding costs
 * nothing that a refusal would count twice: a failed check is only counted on the way through.
 *
 * A bridge's upgrade to `/ws/bridge` is asked the same way: `direct` once its token verifies (valid
 * now) and its proxy runs (the answer waits for the proxy to start), with the terms the proxy
 * takes from the api-backend alone (the address, the user's computer limit, the credential's
 * expiry); nginx then joins the bridge to the proxy itself, and the api-backend learns of the
 * tunnel from the proxy's link events (link-watch.ts). In a cluster, bridges go through: a move
 * of the user's owner cuts them in the api-backend's splice.
 *
 * The edge port listens on loopback only and serves nothing else. Its answer names the proxy's
 * address and secret to nginx; neither leaves nginx (it is the Authorization of the hop to the
 * proxy, the way the api-backend's own relay sends it).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { closeNow, keepIdleConnections, listenUrl, trackSockets } from '../http-lifecycle.js';
import type { Logger } from '../log.js';

/** The one path of the edge port (server/deploy/nginx/conf.d/cloudtolocalllm.conf asks it). */
export const EDGE_ROUTE_PATH = '/edge/route';

/** What nginx tells of the request it holds (its auth subrequest carries no body). */
export const ORIGINAL_URI_HEADER = 'x-original-uri';
export const ORIGINAL_LENGTH_HEADER = 'x-original-content-length';
export const ORIGINAL_ENCODING_HEADER = 'x-original-transfer-encoding';

/** The answer, read by nginx's auth_request_set (never sent on to anyone). */
export const UPSTREAM_HEADER = 'x-ctll-upstream';
export const UPSTREAM_PATH_HEADER = 'x-ctll-path';
export const UPSTREAM_AUTHORIZATION_HEADER = 'x-ctll-authorization';
/** A client key's request: the key, for the proxy to check against the user's key sets (as the relay sends it). */
export const UPSTREAM_CLIENT_KEY_HEADER = 'x-ctll-client-key';
/** A bridge's upgrade: the terms the api-backend verified, for the proxy (bridge-forward.ts replays the same). */
export const UPSTREAM_CLIENT_ADDRESS_HEADER = 'x-ctll-client-address';
export const UPSTREAM_MAX_MACHINES_HEADER = 'x-ctll-max-machines';
export const UPSTREAM_CREDENTIAL_EXPIRES_HEADER = 'x-ctll-credential-expires';
/** What nginx tells of a bridge's upgrade: its Upgrade header (not passed on a subrequest by itself). */
export const ORIGINAL_UPGRADE_HEADER = 'x-original-upgrade';

/** Why a request goes through the api-backend (ctll_edge_routes_total's `reason`). */
export type ThroughReason =
  | 'not-ollama'
  | 'client-key'
  | 'cors'
  | 'credential'
  | 'peer'
  | 'rate'
  | 'elsewhere'
  | 'not-ollama-api'
  | 'no-proxy'
  | 'body'
  | 'cluster'
  | 'upgrade';

/** What a bridge's upgrade carries to the proxy, set by the api-backend (never by the bridge). */
export interface TunnelTermsAnswer {
  address: string;
  maxMachines: number;
  /** ms since the epoch; none for a credential without expiry. */
  expiresAt?: number;
}

export type EdgeRoute =
  | { route: 'direct'; endpoint: string; secret: string; path: string; clientKey?: string; tunnel?: TunnelTermsAnswer }
  | { route: 'through'; reason: ThroughReason };

/** The request nginx holds, as its auth subrequest describes it; undefined when it is not an /ollama one. */
export interface HeldRequest {
  kind: 'ollama';
  /** The request target after `/ollama` (path and query), as the api-backend's relay would send it. */
  target: string;
  /** Declared body bytes: 0 without a body, 'unknown' for a chunked one. */
  bodyBytes: number | 'unknown';
}

/** A bridge's upgrade to `/ws/bridge` that nginx holds. */
export interface HeldBridge {
  kind: 'bridge';
  /** Its Upgrade header ('' when it had none). */
  upgrade: string;
}

const OLLAMA_PREFIX = '/ollama';
/** The bridge's upgrade route of the api-backend (and of nginx in front of it). */
export const EDGE_BRIDGE_PATH = '/ws/bridge';

export function heldRequest(req: IncomingMessage): HeldRequest | HeldBridge | undefined {
  const uri = req.headers[ORIGINAL_URI_HEADER];
  if (typeof uri !== 'string') return undefined;
  const path = uri.split('?')[0] ?? '';
  if (path === EDGE_BRIDGE_PATH) {
    const upgrade = req.headers[ORIGINAL_UPGRADE_HEADER];
    return { kind: 'bridge', upgrade: typeof upgrade === 'string' ? upgrade : '' };
  }
  if (path !== OLLAMA_PREFIX && !path.startsWith(OLLAMA_PREFIX + '/')) return undefined;
  const length = req.headers[ORIGINAL_LENGTH_HEADER];
  const encoding = req.headers[ORIGINAL_ENCODING_HEADER];
  // nginx sends an empty value for a header the client did not send.
  const chunked = typeof encoding === 'string' && encoding !== '';
  const declared = typeof length === 'string' && length !== '' ? (/^\d{1,15}$/.test(length) ? Number(length) : Number.NaN) : 0;
  return { kind: 'ollama', target: uri.slice(OLLAMA_PREFIX.length) || '/', bodyBytes: chunked || Number.isNaN(declared) ? 'unknown' : declared };
}

/**
 * 204 for direct (nginx relays to the proxy), 403 for through (nginx's error_page sends the
 * request to the api-backend's /ollama as it came).
 */
export function answerEdgeRoute(res: ServerResponse, route: EdgeRoute): void {
  if (route.route === 'through') {
    res.writeHead(403, { 'content-length': '0', 'cache-control': 'no-store' });
    res.end();
    return;
  }
  const url = new URL(route.endpoint);
  res.writeHead(204, {
    [UPSTREAM_HEADER]: url.host,
    [UPSTREAM_PATH_HEADER]: route.path,
    [UPSTREAM_AUTHORIZATION_HEADER]: `Bearer ${route.secret}`,
    ...(route.clientKey !== undefined ? { [UPSTREAM_CLIENT_KEY_HEADER]: route.clientKey } : {}),
    ...(route.tunnel !== undefined
      ? {
          [UPSTREAM_CLIENT_ADDRESS_HEADER]: route.tunnel.address,
          [UPSTREAM_MAX_MACHINES_HEADER]: String(route.tunnel.maxMachines),
          ...(route.tunnel.expiresAt !== undefined ? { [UPSTREAM_CREDENTIAL_EXPIRES_HEADER]: String(route.tunnel.expiresAt) } : {}),
        }
      : {}),
    'cache-control': 'no-store',
  });
  res.end();
}

/** The edge port: EDGE_ROUTE_PATH only, loopback only (cloud-server.ts listens on 127.0.0.1). */
export class EdgeRouteServer {
  readonly server: http.Server;
  private readonly destroySockets: () => void;

  constructor(decide: (req: IncomingMessage, held: HeldRequest | HeldBridge) => Promise<EdgeRoute>, log: Logger) {
    this.server = http.createServer({ noDelay: true, headersTimeout: 10_000, requestTimeout: 10_000 });
    keepIdleConnections(this.server);
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      const held = (req.url ?? '').split('?')[0] === EDGE_ROUTE_PATH ? heldRequest(req) : undefined;
      if (!held) return answerEdgeRoute(res, { route: 'through', reason: 'not-ollama' });
      decide(req, held).then(
        (route) => answerEdgeRoute(res, route),
        (e: unknown) => {
          // Through: the api-backend's own path then answers whatever went wrong, as it always has.
          log.error('edge route failed', { error: e instanceof Error ? e.message : String(e) });
          answerEdgeRoute(res, { route: 'through', reason: 'not-ollama' });
        },
      );
    });
    this.destroySockets = trackSockets(this.server);
  }

  listen(port: number, host = '127.0.0.1'): Promise<string> {
    return listenUrl(this.server, port, host);
  }

  close(): Promise<void> {
    return closeNow(this.server, this.destroySockets);
  }
}
