/**
 * The api-backend's gateway: authenticates every call with the user's access token, asks the
 * streaming proxy manager for the caller's streaming proxy, and forwards the caller's Ollama
 * requests and bridge to that streaming proxy only (ollama-forward.ts, bridge-forward.ts).
 *
 *   POST /api/proxy/start | POST /api/proxy/stop | GET /api/proxy/status
 *   ANY  /ollama/*        → forwarded to the caller's streaming proxy (Ollama API)
 *   GET  /ws/bridge       → WebSocket upgrade, spliced to the caller's streaming proxy
 *   GET  /health, /metrics
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AuditLog } from '../audit.js';
import { wwwAuthenticate } from '../auth/jwt-authenticator.js';
import { closeNow, keepIdleConnections, listenUrl, trackSockets } from '../http-lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import { authCode, ERROR_STATUS, ServerError, type AuthReason, type ErrorCode } from '../errors.js';
import type { ProxyManager, ProxyRecord } from '../manager/proxy-manager.js';
import { CONFIG_PATH, HEALTH_PATH, OLLAMA_PREFIX, PROXY_START_PATH, PROXY_STATUS_PATH, PROXY_STOP_PATH, type ClientConfig, type ProxyStopAnswer } from '@cloudtolocalllm/api-contract';
import {
  BRIDGE_PATH as PROXY_BRIDGE_PATH,
  CloseCode,
  DEFAULT_MACHINE_NAME,
  h2UpgradeFor,
  MACHINE_HEADER,
  MAX_MACHINE_NAME_LENGTH,
  RENEW_PATH,
  TUNNEL_PROTOCOL_VERSION,
  tunnelUpgradeOf,
} from '@cloudtolocalllm/bridge/connection/protocol';
import { CLIENT_KEY_HEADER, isClientKey, parseClientKey, routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { bearerToken } from '../proxy/auth.js';
import { findRoute } from '@cloudtolocalllm/bridge/ingress/ollama-routes';
import { checkRequestTarget } from '@cloudtolocalllm/bridge/ingress/request-target';
import { NO_BRIDGE_MESSAGE } from '../proxy/relay.js';
import { endSocket, rawHttpError, sendOllamaError } from '../proxy/ollama-errors.js';
import { userHash, type UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { AuthFailureLimiter, DEFAULT_AUTH_FAILURES, DEFAULT_KEY_FAILURES, type AuthFailureOptions } from './auth-failures.js';
import { forwardBridgeUpgrade, renewOnProxy, replayedUpgrade, type BridgeSplice, type SpliceEvents } from './bridge-forward.js';
import { computersOnProxy } from './proxy-computers.js';
import { clientAddress } from './client-address.js';
import { answerPreflight, applyCors, originAllowed, type CorsOptions } from './cors.js';
import { AcceptedKeys } from './accepted-keys.js';
import { EdgeBridges } from './edge-bridges.js';
import { EdgeRouteServer, type EdgeRoute, type HeldBridge, type HeldRequest, type ThroughReason, type TunnelTermsAnswer } from './edge-route.js';
import { readJsonBody } from './json-body.js';
import { DEFAULT_LIMITS, UserLimits, type LimitOptions } from './limits.js';
import { forwardOllamaRequest, type ForwardExtra } from './ollama-forward.js';
import type { ServerMetrics } from './server-metrics.js';

export type Verification =
  | { ok: true; subject: string; expiresAt?: number }
  | { ok: false; reason: AuthReason; message: string };

/** A call the authentication preamble let in: the verified user, by id and by hash. */
interface Caller {
  subject: string;
  user: UserHash;
  /** The token's expiry (seconds since the epoch), when it has one. */
  expiresAt?: number;
}

type Admission = { ok: true; caller: Caller } | { ok: false; error: ServerError };

/** A refused credential: the refusal, and the reason the JSON API names and the challenge uses. */
class CredentialRefusal extends ServerError {
  constructor(
    readonly reason: AuthReason,
    message: string,
    retryAfterSec?: number,
  ) {
    // The issuer's keys being unreachable passes soon; a blocked address waits out its window.
    super(authCode(reason), message, reason === 'jwks-unavailable' ? 5 : reason === 'too-many-failures' ? (retryAfterSec ?? 60) : retryAfterSec);
  }
}

/** The Retry-After header of a refusal that has one. */
function retryHeaders(e: ServerError): Record<string, string> {
  return e.retryAfterSec === undefined ? {} : { 'retry-after': String(e.retryAfterSec) };
}

/** Any failure to start a user's proxy as the refusal it is answered with. */
function startRefusal(e: unknown): ServerError {
  return e instanceof ServerError ? e : new ServerError('proxy-start-failed', e instanceof Error ? e.message : String(e), 10);
}

/** How many times a header appears: Node keeps only the first Authorization, so count the raw ones. */
function headerCount(req: IncomingMessage, name: string): number {
  let n = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]?.toLowerCase() === name) n += 1;
  return n;
}

/** Verifies the caller's access token (JwtAuthenticator in production). */
export interface RequestVerifier {
  verifyRequest(headers: IncomingHttpHeaders): Promise<Verification>;
}

/** What a peer api-backend vouches for on a hopped request (server/src/cluster/, docs/scaling.md). */
export interface PeerIdentity {
  /** The client's address as the first api-backend saw it. */
  address: string;
  /** The verified token's subject; absent on a client-key request (the key itself travels). */
  subject?: string;
  /** The token's expiry, seconds since the epoch. */
  expiresAt?: number;
}

/**
 * The cluster's part in the gateway (server/src/cluster/cluster-node.ts); absent on a single node.
 * A request for a user another api-backend owns is forwarded there after its credential is checked.
 */
export interface ClusterHooks {
  /** The identity a peer vouches for; 'forged' when a non-peer sent identity headers; undefined otherwise. */
  vouched(req: IncomingMessage): PeerIdentity | 'forged' | undefined;
  /**
   * Where this routing key is served: here, at another member (forwarded), or nowhere yet (a
   * peer sent it here while this node thinks another owns it: the two see the members a lookup
   * apart; the client retries in a moment rather than be served by a node that will not keep it).
   */
  placement(req: IncomingMessage, route: string, kind: 'request' | 'bridge'): 'here' | 'not-here' | { owner: string };
  /** A bridge opened or closed here: the users this node serves changed (servedRoutes). */
  servedChanged(): void;
  forwardRequest(req: IncomingMessage, res: ServerResponse, owner: string, identity: PeerIdentity, authorization: string | undefined, refuse: (message: string) => void): void;
  forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, owner: string, identity: PeerIdentity, events: SpliceEvents): BridgeSplice;
  /** This node and the members as it sees them, for /health. */
  view(): { self: string | undefined; members: readonly string[] };
}

export interface ApiServerOptions {
  verifier: RequestVerifier;
  manager: ProxyManager;
  metrics: ServerMetrics;
  audit: AuditLog;
  log?: Logger;
  cors?: CorsOptions;
  limits?: LimitOptions;
  maxHeaderBytes?: number;
  /** When set, /metrics needs `Authorization: Bearer <metricsToken>`. */
  metricsToken?: string;
  /** /metrics is refused altogether without a metricsToken (the deployed stack: never public). */
  metricsRequireToken?: boolean;
  /** Failed authentications per client address before 429 (auth-failures.ts). */
  authFailures?: AuthFailureOptions;
  /**
   * Failed client-key attempts per user (by the keys' routing part) before 429: generous, so a
   * stranger cannot cheaply lock a user out, yet a guessing run against one user is cut off.
   */
  keyFailures?: AuthFailureOptions;
  /** Believe X-Real-IP from a loopback peer (nginx in front; CTLL_TRUST_PROXY): client-address.ts. */
  trustRealIp?: boolean;
  /** Public sign-in settings for clients (GET /api/config): where to sign in, for which API. */
  clientConfig?: () => ClientConfig | undefined;
  /** Extra routes served before the API's own (the embedded issuer, static pages). */
  fallback?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Several api-backends (docs/scaling.md); unset on a single node. */
  cluster?: ClusterHooks;
}

const BRIDGE_ROUTE = '/ws/bridge';
const PEER_ONLY = 'the x-cloudtolocalllm-cluster-* headers are for the cloud nodes among themselves; remove them';
const OWNER_MOVING = 'the cloud nodes are changing which of them serves your account; retry in a second';

/** A key's 401s from the proxy (key-set.ts) and the bridge (key-scope.ts): counted as failed attempts. */
const KEY_REFUSALS: ReadonlySet<string> = new Set(['key-invalid', 'key-expired', 'key-unknown']);

const sameSecret = (a: string, b: string): boolean => timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

/** A refusal of the JSON API, `{error}`, with its code's status (errors.ts). */
function sendRefusal(res: ServerResponse, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, ERROR_STATUS[code], { error: message }, headers);
}

export class ApiServer {
  readonly server: http.Server;
  private readonly log: Logger;
  readonly limits: UserLimits;
  readonly authFailures: AuthFailureLimiter;
  readonly keyFailures: AuthFailureLimiter;
  /**
   * Client keys' routing parts → user hash, learnt when a user's bridge connects (a key is only
   * usable while it is): in memory, so a restarted server knows a user again at the reconnect.
   */
  private readonly keyRoutes = new Map<string, UserHash>();
  /** Client keys the proxy accepted lately, the ones edge routing sends straight to it. */
  private readonly acceptedKeys = new AcceptedKeys();
  /** The bridges nginx joined straight to their proxies, known from the proxies' link events. */
  private readonly edgeBridges: EdgeBridges;
  /** The computer names of each user's open bridge sockets, with how many sockets carry each. */
  private readonly bridgeNames = new Map<UserHash, Map<string, number>>();
  /** The bridges this node splices to its own proxies, by user: cut when their owner moves (cluster). */
  private readonly localBridges = new Map<UserHash, Set<BridgeSplice>>();
  /** The computer name each open bridge connection came with, for the audit lines. */
  private readonly spliceMachines = new WeakMap<BridgeSplice, string>();
  private readonly cors: CorsOptions;
  private readonly startedAt = Date.now();
  private readonly destroySockets: () => void;
  /** Routes served after the API's own (static pages); settable once the server knows its URL. */
  fallback: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  private edge: EdgeRouteServer | undefined;

  constructor(private readonly options: ApiServerOptions) {
    this.log = options.log ?? silentLogger;
    this.limits = new UserLimits(options.limits ?? DEFAULT_LIMITS);
    this.authFailures = new AuthFailureLimiter(options.authFailures ?? DEFAULT_AUTH_FAILURES, options.audit);
    this.keyFailures = new AuthFailureLimiter(options.keyFailures ?? DEFAULT_KEY_FAILURES, options.audit);
    this.cors = options.cors ?? { origins: ['*'] };
    this.edgeBridges = new EdgeBridges(options.manager, options.metrics, options.audit);
    this.server = http.createServer({
      maxHeaderSize: options.maxHeaderBytes ?? 16 * 1024,
      requestTimeout: 0, // blob uploads and long generations
      headersTimeout: 60_000,
      noDelay: true,
    });
    keepIdleConnections(this.server);
    this.server.on('request', (req, res) => {
      this.onRequest(req, res).catch((e: unknown) => {
        this.log.error('request failed', { error: e instanceof Error ? e.message : String(e) });
        if (!res.headersSent) sendRefusal(res, 'internal-error', 'internal error; it has been logged');
        else res.destroy();
      });
    });
    this.server.on('upgrade', (req, socket, head) => {
      this.onUpgrade(req, socket, head).catch((e: unknown) => {
        this.log.error('upgrade failed', { error: e instanceof Error ? e.message : String(e) });
        socket.destroy();
      });
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
      if (err.code === 'HPE_HEADER_OVERFLOW') {
        return void socket.end(rawHttpError('headers-too-large', `the request's headers are larger than the limit of ${options.maxHeaderBytes ?? 16 * 1024} bytes`));
      }
      socket.end(rawHttpError('not-http', `the request is not valid HTTP (${err.code ?? 'parse error'})`));
    });
    this.destroySockets = trackSockets(this.server);
  }

  listen(port = 0, host = '127.0.0.1'): Promise<string> {
    return listenUrl(this.server, port, host);
  }

  /** Edge routing's port (edge-route.ts), on loopback only: nginx on the same host asks it. */
  listenEdge(port = 0): Promise<string> {
    this.edge ??= new EdgeRouteServer((req, held) => this.edgeRoute(req, held), this.log);
    // Bridges go straight to proxies only on a single node (edgeBridge): there, proxies adopted
    // from a previous run may hold some.
    if (this.options.cluster === undefined) this.edgeBridges.watchRunning();
    return this.edge.listen(port, '127.0.0.1');
  }

  async close(): Promise<void> {
    await this.edge?.close();
    this.edgeBridges.close();
    await closeNow(this.server, this.destroySockets);
    this.authFailures.close();
    this.keyFailures.close();
  }

  /**
   * The authentication preamble of every authenticated route, written once: an address over its
   * failure limit is refused before any check; two Authorization headers are refused (intermediaries in
   * front disagree on which one wins); the token is verified; every failure is counted for the
   * address (by route) and audited in its window's one line (auth-failures.ts). Opening a tunnel
   * also needs a token valid now; every other call takes one request from the user's rate.
   */
  private async admit(req: IncomingMessage, route: 'api' | 'ollama' | 'bridge', call: 'request' | 'tunnel' = 'request'): Promise<Admission> {
    const { metrics } = this.options;
    const address = this.address(req);
    const vouched = this.options.cluster?.vouched(req);
    if (typeof vouched === 'object' && vouched.subject !== undefined) {
      // A peer checked the token already (and counted its outcome); this node, the owner, still
      // applies the user's limits.
      return this.admitted({ subject: vouched.subject, user: userHash(vouched.subject), ...(vouched.expiresAt !== undefined ? { expiresAt: vouched.expiresAt } : {}) }, call);
    }
    const screened = this.screen(req, address, route);
    if (screened?.reason === 'too-many-failures') {
      metrics.authOutcomes.inc({ route, outcome: screened.reason });
      return { ok: false, error: screened };
    }
    const v: Verification = screened
      ? { ok: false, reason: screened.reason, message: screened.message }
      : await this.options.verifier.verifyRequest(req.headers);
    if (!v.ok) {
      metrics.authFailures.inc({ reason: v.reason });
      metrics.authOutcomes.inc({ route, outcome: v.reason });
      // The issuer's keys being unreachable is not the caller's failure.
      if (v.reason !== 'jwks-unavailable') this.authFailures.failed(address, v.reason, route);
      return { ok: false, error: new CredentialRefusal(v.reason, v.message) };
    }
    return this.admitted({ subject: v.subject, user: userHash(v.subject), ...(v.expiresAt !== undefined ? { expiresAt: v.expiresAt } : {}) }, call, route);
  }

  /**
   * The checks after the credential: a tunnel's token valid now, or one request from the user's
   * rate. `route` names where the outcome is counted; none for a hopped call, counted where it landed.
   */
  private admitted(caller: Caller, call: 'request' | 'tunnel', route?: 'api' | 'ollama' | 'bridge'): Admission {
    const { metrics } = this.options;
    const outcome = (value: string): void => {
      if (route) metrics.authOutcomes.inc({ route, outcome: value });
    };
    if (call === 'tunnel') {
      // A tunnel lives until its credential expires: one past its expiry on our clock (accepted
      // within the clock tolerance) would be a tunnel of no length, reconnecting for ever.
      if (caller.expiresAt !== undefined && caller.expiresAt * 1000 <= Date.now()) {
        metrics.authFailures.inc({ reason: 'expired' });
        outcome('expired');
        return { ok: false, error: new CredentialRefusal('expired', 'the token has expired; a tunnel needs a token that is valid now (sign in again)') };
      }
      outcome('ok');
      return { ok: true, caller };
    }
    outcome('ok');
    const rate = this.limits.takeRequest(caller.user);
    if (!rate.ok) {
      metrics.limitRefusals.inc({ limit: rate.limit });
      return { ok: false, error: new ServerError('rate-limit', rate.message, rate.retryAfterSec) };
    }
    return { ok: true, caller };
  }

  /** Where the request came from: the client's address, which a peer states for a hopped request. */
  private address(req: IncomingMessage): string {
    const vouched = this.options.cluster?.vouched(req);
    return typeof vouched === 'object' ? vouched.address : clientAddress(req, this.options.trustRealIp ?? false);
  }

  /**
   * Cluster (docs/scaling.md): a user another api-backend owns is served there, over the
   * authenticated hop; the caller's credential was checked here. True when forwarded.
   */
  private hopped(req: IncomingMessage, res: ServerResponse, route: string, identity: Omit<PeerIdentity, 'address'>, shape: 'ollama' | 'api', authorization?: string): boolean {
    const cluster = this.options.cluster;
    const placement = cluster?.placement(req, route, 'request') ?? 'here';
    if (placement === 'here') return false;
    const refuse = (code: 'peer-unreachable' | 'owner-moving', message: string, retry: string): void =>
      shape === 'ollama' ? sendOllamaError(res, code, message, { 'retry-after': retry }) : sendRefusal(res, code, message, { 'retry-after': retry });
    if (placement === 'not-here') {
      req.resume();
      refuse('owner-moving', OWNER_MOVING, '1');
      return true;
    }
    cluster!.forwardRequest(req, res, placement.owner, { ...identity, address: this.address(req) }, authorization, (message) => refuse('peer-unreachable', message, '2'));
    return true;
  }

  /** Cluster: the routing parts of the users whose bridge or proxy runs on this node. */
  servedRoutes(): string[] {
    const users = new Set<UserHash>([...this.localBridges.keys(), ...this.options.manager.users()]);
    return [...users].map((u) => routeOf(u));
  }

  /** Cluster: cuts this node's bridges of users it no longer owns; each reconnects to the new owner. */
  cutBridges(stillOwned: (route: string) => boolean): number {
    let cut = 0;
    for (const [user, splices] of this.localBridges) {
      if (stillOwned(routeOf(user))) continue;
      for (const s of splices) {
        s.cut(CloseCode.OwnerMoved, 'another cloud node owns this account now; reconnect');
        cut += 1;
      }
    }
    return cut;
  }

  /**
   * The first two checks of every credential, token or client key: an address over its failure
   * limit is refused before anything else, then a request with more than one Authorization header.
   */
  private screen(req: IncomingMessage, address: string, route: string): CredentialRefusal | undefined {
    const wait = this.authFailures.blocked(address, route);
    if (wait !== undefined) {
      this.options.metrics.limitRefusals.inc({ limit: 'auth-failures' });
      return new CredentialRefusal('too-many-failures', `too many failed authentications from your address; retry in ${wait} s`, wait);
    }
    const credentials = headerCount(req, 'authorization');
    if (credentials > 1) return new CredentialRefusal('duplicate-credentials', `the request has ${credentials} Authorization headers; send exactly one`);
    return undefined;
  }

  /** A refusal of the JSON API: `{error}`, and `reason` with the challenge for a credential. */
  private sendApiError(res: ServerResponse, e: ServerError): void {
    if (!(e instanceof CredentialRefusal)) return sendRefusal(res, e.code, e.message, retryHeaders(e));
    if (e.reason === 'jwks-unavailable') return sendJson(res, e.status, { error: `sign-in cannot be checked right now: ${e.message}` }, retryHeaders(e));
    sendJson(res, e.status, { error: e.message, reason: e.reason }, { ...this.challenge(e), ...retryHeaders(e) });
  }

  /** A refusal on /ollama: Ollama's error shape with the code, as the streaming proxy answers. */
  private sendOllamaRefusal(res: ServerResponse, e: ServerError): void {
    if (e instanceof CredentialRefusal && e.reason === 'jwks-unavailable') return this.sendApiError(res, e);
    sendOllamaError(res, e.code, e.message, { ...(e instanceof CredentialRefusal ? this.challenge(e) : {}), ...retryHeaders(e) });
  }

  /** A refused WebSocket upgrade, written on the raw socket. */
  private refuseUpgrade(socket: Duplex, e: ServerError): void {
    const challenge = e instanceof CredentialRefusal && (e.status === 401 || e.status === 503) ? `WWW-Authenticate: ${wwwAuthenticate(e)}\r\n` : '';
    const retry = e.retryAfterSec !== undefined ? `Retry-After: ${e.retryAfterSec}\r\n` : '';
    endSocket(socket, rawHttpError(e.code, e.message).replace('\r\n', `\r\n${challenge}${retry}`));
  }

  /** RFC 6750's challenge for a 401 (auth/jwt-authenticator.ts). */
  private challenge(e: CredentialRefusal): Record<string, string> {
    return e.status === 401 ? { 'www-authenticate': wwwAuthenticate(e) } : {};
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    if (!rawUrl.startsWith('/')) return sendRefusal(res, 'absolute-form', 'absolute-form request targets are refused');
    const path = rawUrl.split('?')[0] ?? '/';
    const isOllama = path === OLLAMA_PREFIX || path.startsWith(OLLAMA_PREFIX + '/');
    if (this.options.cluster?.vouched(req) === 'forged') {
      // Cluster: only an authenticated peer may say who the user is (cluster/cluster-node.ts).
      req.resume();
      return isOllama ? sendOllamaError(res, 'peer-only', PEER_ONLY) : sendRefusal(res, 'peer-only', PEER_ONLY);
    }
    if (isOllama || path.startsWith('/api/')) {
      if (answerPreflight(req, res, this.cors)) return;
      applyCors(req, res, this.cors);
    }
    if (path === HEALTH_PATH) return this.health(req, res);
    if (path === '/metrics') return this.metrics(req, res);
    if (path === CONFIG_PATH) {
      if (req.method !== 'GET') return sendRefusal(res, 'method-not-allowed', 'use GET', { allow: 'GET' });
      const clientConfig = this.options.clientConfig?.();
      if (!clientConfig) return sendRefusal(res, 'server-starting', 'the server is still starting; try again in a moment', { 'retry-after': '1' });
      return sendJson(res, 200, clientConfig);
    }
    if (path.startsWith('/api/proxy/')) return this.proxyApi(req, res, path);
    if (path === RENEW_PATH) return this.renewTunnel(req, res);
    if (isOllama) return this.ollama(req, res, rawUrl.slice(OLLAMA_PREFIX.length) || '/');
    if (path === BRIDGE_ROUTE) {
      return sendRefusal(res, 'websocket-required', `${BRIDGE_ROUTE} is the bridge's WebSocket endpoint; it needs a WebSocket upgrade`, { upgrade: 'websocket' });
    }
    if ((this.fallback ?? this.options.fallback)?.(req, res)) return;
    sendRefusal(res, 'not-found', `no such endpoint: ${req.method} ${path}`);
  }

  private health(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendRefusal(res, 'method-not-allowed', 'use GET', { allow: 'GET, HEAD' });
    sendJson(res, 200, {
      status: 'ok',
      runtime: this.options.manager.runtimeKind,
      proxies: this.options.manager.size,
      ...(this.options.cluster ? { cluster: this.options.cluster.view() } : {}),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
    });
  }

  private async metrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET') return sendRefusal(res, 'method-not-allowed', 'use GET', { allow: 'GET' });
    const token = this.options.metricsToken;
    if (!token && this.options.metricsRequireToken) {
      return sendRefusal(res, 'metrics-off', 'metrics are off: this server needs a METRICS_TOKEN to serve them (CTLL_METRICS_REQUIRE_TOKEN=1)');
    }
    if (token && !sameSecret(req.headers.authorization ?? '', `Bearer ${token}`)) {
      return sendRefusal(res, 'metrics-unauthorized', 'metrics need the operator\'s METRICS_TOKEN as a Bearer token', { 'www-authenticate': 'Bearer realm="metrics"' });
    }
    const text = await this.options.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': this.options.metrics.registry.contentType });
    res.end(text);
  }

  private async proxyApi(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const routes: Record<string, string> = { [PROXY_START_PATH]: 'POST', [PROXY_STOP_PATH]: 'POST', [PROXY_STATUS_PATH]: 'GET' };
    const method = routes[path];
    if (!method) return sendRefusal(res, 'not-found', `no such endpoint: ${path}; use /api/proxy/start, /api/proxy/stop or /api/proxy/status`);
    if (req.method !== method) {
      req.resume();
      return sendRefusal(res, 'method-not-allowed', `${req.method} is not allowed on ${path}; use ${method}`, { allow: method });
    }
    const admission = await this.admit(req, 'api');
    if (!admission.ok) {
      req.resume();
      return this.sendApiError(res, admission.error);
    }
    const { subject, user } = admission.caller;
    if (this.hopped(req, res, routeOf(user), { subject }, 'api')) return;
    if (method === 'POST') {
      const body = await readJsonBody(req, 16 * 1024);
      if (!body.ok) return this.sendApiError(res, new ServerError(body.code, body.message));
    }
    const { manager } = this.options;
    if (path === PROXY_STATUS_PATH) {
      const view = manager.view(subject);
      const record = manager.record(user);
      if (record?.state === 'running' && record.instance && view.bridgeConnected) {
        view.computers = await computersOnProxy({ endpoint: record.instance.endpoint, secret: record.secret });
      }
      return sendJson(res, 200, view);
    }
    if (path === PROXY_STOP_PATH) {
      const stopped = await manager.stop(subject);
      return sendJson(res, 200, { ...manager.view(subject), stopped } satisfies ProxyStopAnswer);
    }
    try {
      const existed = manager.record(user)?.state === 'running';
      await manager.ensure(subject);
      sendJson(res, existed ? 200 : 201, manager.view(subject));
    } catch (e) {
      this.sendApiError(res, startRefusal(e));
    }
  }

  /**
   * POST /api/tunnel/renew {tunnel}: a bridge extends its open tunnel with a fresh token. The
   * token is verified here, like every other (the proxy never sees a user's token), and the
   * proxy of the token's own user is told the new expiry; it extends only the tunnel named, so
   * only the bridge that opened it can keep it open.
   */
  private async renewTunnel(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') {
      req.resume();
      return sendRefusal(res, 'method-not-allowed', `use POST on ${RENEW_PATH}`, { allow: 'POST' });
    }
    const admission = await this.admit(req, 'bridge');
    if (!admission.ok) {
      req.resume();
      return this.sendApiError(res, admission.error);
    }
    const { user, expiresAt } = admission.caller;
    if (this.hopped(req, res, routeOf(user), { subject: admission.caller.subject, ...(expiresAt !== undefined ? { expiresAt } : {}) }, 'api')) return;
    const body = await readJsonBody(req, 4096);
    if (!body.ok) return this.sendApiError(res, new ServerError(body.code, body.message));
    const tunnel = body.value['tunnel'];
    if (typeof tunnel !== 'string' || !tunnel) return sendRefusal(res, 'bad-request', 'expected {"tunnel": "<the id from the 101 answer>"}');
    const record = this.options.manager.record(user);
    if (!record?.instance || record.state !== 'running' || expiresAt === undefined) {
      return this.sendApiError(res, new ServerError('no-tunnel', 'no tunnel of yours is open on this server; the bridge reconnects'));
    }
    const answer = await renewOnProxy({ endpoint: record.instance.endpoint, secret: record.secret }, tunnel, expiresAt * 1000);
    this.options.audit.record({ action: 'bridge.renew', result: answer.status === 200 ? 'ok' : 'refused', userHash: user, address: this.address(req) });
    sendJson(res, answer.status, answer.body);
  }

  private async ollama(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const presented = bearerToken(req.headers);
    if (presented !== undefined && isClientKey(presented)) return this.ollamaWithKey(req, res, path, presented);
    const admission = await this.admit(req, 'ollama');
    if (!admission.ok) {
      req.resume();
      return this.sendOllamaRefusal(res, admission.error);
    }
    const { subject, user } = admission.caller;
    if (this.hopped(req, res, routeOf(user), { subject }, 'ollama')) return;
    this.forwardToProxy(req, res, path, user);
  }

  /**
   * A client key (issue 9): its form and checksum are checked here, it is routed by its routing
   * part to that user's proxy only, and the proxy checks its secret against the set the user's
   * bridge sent. Failures count per client address and per user; the key is never logged.
   */
  private ollamaWithKey(req: IncomingMessage, res: ServerResponse, path: string, presented: string): void {
    const { metrics } = this.options;
    const address = this.address(req);
    const refuse = (e: ServerError): void => {
      req.resume();
      this.sendOllamaRefusal(res, e);
    };
    const failed = (reason: string, route?: string): void => {
      metrics.authFailures.inc({ reason });
      metrics.authOutcomes.inc({ route: 'key', outcome: reason });
      this.authFailures.failed(address, reason, 'ollama-key');
      if (route) this.keyFailures.failed(`keys:${route}`, reason, 'ollama-key');
    };
    const screened = this.screen(req, address, 'ollama-key');
    if (screened) {
      metrics.authOutcomes.inc({ route: 'key', outcome: screened.reason });
      return refuse(screened);
    }
    const key = parseClientKey(presented);
    if (!key.ok) {
      failed(key.reason);
      return refuse(new CredentialRefusal(key.reason, key.message));
    }
    const userWait = this.keyFailures.blocked(`keys:${key.route}`, 'ollama-key');
    if (userWait !== undefined) {
      metrics.limitRefusals.inc({ limit: 'key-failures' });
      metrics.authOutcomes.inc({ route: 'key', outcome: 'too-many-failures' });
      return refuse(new CredentialRefusal('too-many-failures', `too many failed attempts with keys of this endpoint; retry in ${userWait} s`, userWait));
    }
    // The key names its user's routing part, so any node finds the owner; the key goes with it.
    if (this.hopped(req, res, key.route, {}, 'ollama', `Bearer ${presented}`)) return;
    const user = this.keyRoutes.get(key.route);
    if (user === undefined) {
      req.resume();
      return sendOllamaError(res, 'no-bridge', NO_BRIDGE_MESSAGE, { 'retry-after': '5' });
    }
    const rate = this.limits.takeRequest(user);
    if (!rate.ok) {
      metrics.limitRefusals.inc({ limit: rate.limit });
      return refuse(new ServerError('rate-limit', rate.message, rate.retryAfterSec));
    }
    this.forwardToProxy(req, res, path, user, {
      headers: { [CLIENT_KEY_HEADER]: presented },
      answered: (status, refusal) => {
        // Only the refusals the proxy and bridge make: a bridge's answer must not pick metric labels.
        if (status !== 401 || refusal === undefined || !KEY_REFUSALS.has(refusal)) {
          // The proxy checked the key's secret and let the request through: edge routing may
          // now send this key's requests to the proxy without the api-backend.
          if (status !== 401) {
            metrics.authOutcomes.inc({ route: 'key', outcome: 'ok' });
            this.acceptedKeys.accepted(presented, user);
          }
          return undefined;
        }
        this.acceptedKeys.refused(presented);
        failed(refusal, key.route);
        const why = refusal === 'key-expired' ? 'the key has expired' : 'the key is not valid for this endpoint';
        return { 'www-authenticate': wwwAuthenticate({ reason: refusal, message: why }) };
      },
    });
  }

  /**
   * Edge routing (edge-route.ts): may nginx send this request straight to the user's proxy? Only
   * when every check of the relay below passes now; a failed check is not counted here (the
   * request then comes through /ollama, where it is). What passes is counted as the relay would:
   * the credential's outcome, the request's rate token, the body's bytes, the user's activity.
   * A client key goes straight only once the proxy has accepted it (accepted-keys.ts).
   */
  async edgeRoute(req: IncomingMessage, held: HeldRequest | HeldBridge): Promise<EdgeRoute> {
    const through = (reason: ThroughReason): EdgeRoute => {
      this.options.metrics.edgeRoutes.inc({ route: 'through', reason });
      return { route: 'through', reason };
    };
    if (held.kind === 'bridge') return this.edgeBridge(req, held, through);
    // A browser's allowed origin needs the CORS answer the api-backend adds.
    const origin = req.headers.origin;
    if (origin !== undefined && originAllowed(origin, this.cors)) return through('cors');
    if (this.options.cluster?.vouched(req) !== undefined) return through('peer');
    if (headerCount(req, 'authorization') > 1) return through('credential');
    const presented = bearerToken(req.headers);
    if (presented !== undefined && isClientKey(presented)) {
      const key = parseClientKey(presented);
      if (!key.ok || this.authFailures.isBlocked(this.address(req)) || this.keyFailures.isBlocked(`keys:${key.route}`)) {
        return through('client-key');
      }
      const user = this.acceptedKeys.userOf(presented);
      if (user === undefined || this.keyRoutes.get(key.route) !== user) return through('client-key');
      return this.edgeRouteFor(req, held, user, key.route, through, presented);
    }
    if (this.authFailures.isBlocked(this.address(req))) return through('credential');
    const v = await this.options.verifier.verifyRequest(req.headers);
    if (!v.ok) return through('credential');
    const user = userHash(v.subject);
    return this.edgeRouteFor(req, held, user, routeOf(user), through);
  }

  /**
   * A bridge's upgrade (edge-route.ts): straight to the proxy when onUpgrade below would splice
   * it there untouched: one of our transports, a token valid now, a proxy running (started here
   * if need be, as a bridge connecting always provisions it). Its tunnel is then counted from the
   * proxy's link events (edge-bridges.ts). Refusals go through, to be answered and counted there;
   * so do all bridges of a cluster, whose moves are cut in the splice.
   */
  private async edgeBridge(req: IncomingMessage, held: HeldBridge, through: (reason: ThroughReason) => EdgeRoute): Promise<EdgeRoute> {
    const { metrics, manager } = this.options;
    if (this.options.cluster !== undefined) return through('cluster');
    if (tunnelUpgradeOf(held.upgrade) === undefined) return through('upgrade');
    if (headerCount(req, 'authorization') > 1 || this.authFailures.isBlocked(this.address(req))) return through('credential');
    const v = await this.options.verifier.verifyRequest(req.headers);
    if (!v.ok || (v.expiresAt !== undefined && v.expiresAt * 1000 <= Date.now())) return through('credential');
    const user = userHash(v.subject);
    let record: ProxyRecord;
    try {
      record = await manager.ensure(v.subject);
    } catch {
      return through('no-proxy');
    }
    if (!record.instance) return through('no-proxy');
    this.keyRoutes.set(routeOf(user), user);
    this.edgeBridges.watch(user, record);
    metrics.authOutcomes.inc({ route: 'bridge', outcome: 'ok' });
    metrics.edgeRoutes.inc({ route: 'direct', reason: 'bridge' });
    return {
      route: 'direct',
      endpoint: record.instance.endpoint,
      secret: record.secret,
      path: PROXY_BRIDGE_PATH,
      tunnel: this.tunnelTerms(this.address(req), v.expiresAt),
    };
  }

  /** What a bridge's tunnel is opened with, whoever joins it to the proxy (the splice, or nginx). */
  private tunnelTerms(address: string, expiresAtSec: number | undefined): TunnelTermsAnswer {
    return { address, maxMachines: this.limits.options.maxBridgeConnections, ...(expiresAtSec !== undefined ? { expiresAt: expiresAtSec * 1000 } : {}) };
  }

  /** The checks of edgeRoute after the credential, the same for a token and a client key. */
  private edgeRouteFor(req: IncomingMessage, held: HeldRequest, user: UserHash, route: string, through: (reason: ThroughReason) => EdgeRoute, clientKey?: string): EdgeRoute {
    const { metrics, manager } = this.options;
    if ((this.options.cluster?.placement(req, route, 'request') ?? 'here') !== 'here') return through('elsewhere');
    const target = checkRequestTarget(held.target, undefined, undefined, '');
    if (!target.ok || !findRoute(target.path)) return through('not-ollama-api');
    const record = manager.record(user);
    if (!record || record.state !== 'running' || !record.instance) return through('no-proxy');
    if (held.bodyBytes === 'unknown') return through('body');
    // The body is looked at before the rate's token is taken: sent through after that, the
    // request would take a second token there.
    if (!this.limits.bodyFits(user, held.bodyBytes)) return through('body');
    if (!this.limits.takeRequest(user).ok) return through('rate');
    this.limits.takeBody(user, held.bodyBytes);
    metrics.authOutcomes.inc({ route: clientKey === undefined ? 'ollama' : 'key', outcome: 'ok' });
    metrics.edgeRoutes.inc({ route: 'direct', reason: '' });
    manager.touch(user);
    return { route: 'direct', endpoint: record.instance.endpoint, secret: record.secret, path: held.target, ...(clientKey !== undefined ? { clientKey } : {}) };
  }

  /** Sends an admitted `/ollama/*` request to the proxy of `user`. */
  private forwardToProxy(req: IncomingMessage, res: ServerResponse, path: string, user: UserHash, extra?: ForwardExtra): void {
    // Only Ollama's API goes on: the proxy's own endpoints (/health, /metrics, /bridge) share
    // its path space and must not answer through /ollama/health (the bridge refuses the rest again).
    const target = checkRequestTarget(path, undefined, undefined, '');
    if (target.ok && !findRoute(target.path)) {
      req.resume();
      return sendOllamaError(res, 'not-ollama-api', `${target.path} is not part of the Ollama API`);
    }
    const record = this.options.manager.record(user);
    if (!record || record.state !== 'running' || !record.instance) {
      req.resume();
      return sendOllamaError(res, 'no-bridge', NO_BRIDGE_MESSAGE, { 'retry-after': '5' });
    }
    const { manager } = this.options;
    const slot = this.limits.acquire('request', user, res, { taken: () => manager.requestStarted(user), released: () => manager.requestEnded(user) });
    if (!slot.ok) {
      req.resume();
      this.options.metrics.limitRefusals.inc({ limit: slot.limit });
      return sendOllamaError(res, 'concurrency-limit', slot.message, { 'retry-after': String(slot.retryAfterSec) });
    }
    forwardOllamaRequest(
      req,
      res,
      path,
      { endpoint: record.instance.endpoint, secret: record.secret },
      this.options.metrics,
      {
        take: (bytes) => this.limits.takeBody(user, bytes),
        stallMs: this.limits.options.bodyStallMs,
        onStall: () => this.options.metrics.limitRefusals.inc({ limit: 'body-stall' }),
        onThrottle: (ms) => this.options.metrics.bodyThrottleSeconds.inc(ms / 1000),
      },
      () => manager.touch(user),
      extra,
    );
  }

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').split('?')[0];
    if (path !== BRIDGE_ROUTE) {
      endSocket(socket, rawHttpError('not-found', `WebSocket connections are only accepted on ${BRIDGE_ROUTE}`));
      return;
    }
    if (this.options.cluster?.vouched(req) === 'forged') {
      return this.refuseUpgrade(socket, new ServerError('peer-only', PEER_ONLY));
    }
    if (replayedUpgrade(req) === undefined) {
      return this.refuseUpgrade(socket, new ServerError('websocket-required', `${BRIDGE_ROUTE} takes the bridge's tunnel as a WebSocket or as ${h2UpgradeFor(TUNNEL_PROTOCOL_VERSION)}; this request asked for "${String(req.headers.upgrade ?? '').slice(0, 60)}"`));
    }
    const admission = await this.admit(req, 'bridge', 'tunnel');
    if (!admission.ok) return this.refuseUpgrade(socket, admission.error);
    const { subject, user, expiresAt } = admission.caller;
    const placement = this.options.cluster?.placement(req, routeOf(user), 'bridge') ?? 'here';
    if (placement === 'not-here') return this.refuseUpgrade(socket, new ServerError('owner-moving', OWNER_MOVING, 1));
    if (placement !== 'here') return this.hopUpgrade(req, socket, head, placement.owner, admission.caller);
    this.keyRoutes.set(routeOf(user), user);
    // Held until the bridge's socket closes, whichever way this upgrade ends. A computer coming
    // back under a name that is still connected replaces that link: it may take one slot over the
    // limit for the moment the proxy takes to drop the older one.
    const machineHeader = req.headers[MACHINE_HEADER];
    const machine = typeof machineHeader === 'string' ? machineHeader.slice(0, MAX_MACHINE_NAME_LENGTH + 1) : DEFAULT_MACHINE_NAME;
    const names = this.bridgeNames.get(user) ?? new Map<string, number>();
    const slot = this.limits.acquire('bridge', user, socket, {}, (names.get(machine) ?? 0) > 0 ? 1 : 0);
    if (slot.ok) {
      this.bridgeNames.set(user, names);
      names.set(machine, (names.get(machine) ?? 0) + 1);
      socket.once('close', () => {
        const left = (names.get(machine) ?? 1) - 1;
        if (left > 0) names.set(machine, left);
        else names.delete(machine);
        if (names.size === 0 && this.bridgeNames.get(user) === names) this.bridgeNames.delete(user);
      });
    }
    if (!slot.ok) {
      this.options.metrics.limitRefusals.inc({ limit: slot.limit });
      return this.refuseUpgrade(socket, new ServerError('bridge-limit', slot.message));
    }
    let record: ProxyRecord;
    try {
      // A bridge connecting provisions its proxy.
      record = await this.options.manager.ensure(subject);
    } catch (e) {
      return this.refuseUpgrade(socket, startRefusal(e));
    }
    if (socket.destroyed || !record.instance) {
      socket.destroy();
      return;
    }
    const { manager, metrics, audit } = this.options;
    const address = this.address(req);
    const client = String(req.headers['user-agent'] ?? 'unknown').slice(0, 120);
    const terms = this.tunnelTerms(address, expiresAt);
    // Known from the 101 on (an upgrade the proxy refuses never opens, nor stays listed).
    const splice: BridgeSplice = forwardBridgeUpgrade(req, socket, head, { endpoint: record.instance.endpoint, secret: record.secret }, terms, {
      opened: () => {
        const splices = this.localBridges.get(user) ?? new Set<BridgeSplice>();
        this.localBridges.set(user, splices.add(splice));
        this.spliceMachines.set(splice, machine);
        manager.bridgeOpened(user);
        this.options.cluster?.servedChanged();
        metrics.bridgesConnected.inc();
        audit.record({ action: 'bridge.connect', result: 'ok', userHash: user, address, client, machine });
      },
      closed: () => {
        const splices = this.localBridges.get(user);
        splices?.delete(splice);
        if (splices?.size === 0) this.localBridges.delete(user);
        manager.bridgeClosed(user);
        this.options.cluster?.servedChanged();
        metrics.bridgesConnected.dec();
        // Another connection under the same name is open: this one was replaced (a restart).
        const replaced = [...(splices ?? [])].some((s) => this.spliceMachines.get(s) === machine);
        audit.record({ action: 'bridge.disconnect', result: 'ok', userHash: user, address, machine, ...(replaced ? { reason: 'replaced' } : {}) });
      },
      activity: (bytes) => {
        manager.touch(user);
        metrics.bytesRelayed.inc({ direction: 'bridge' }, bytes);
      },
    });
  }

  /** Cluster: a bridge of a user another api-backend owns is spliced to that node's gateway. */
  private hopUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, owner: string, caller: Caller): void {
    const { metrics } = this.options;
    const identity: PeerIdentity = { address: this.address(req), subject: caller.subject, ...(caller.expiresAt !== undefined ? { expiresAt: caller.expiresAt } : {}) };
    this.options.cluster!.forwardUpgrade(req, socket, head, owner, identity, {
      // Counted as connected by the owner, which serves it: once in the cluster's sum.
      opened: () => undefined,
      closed: () => undefined,
      activity: (bytes) => metrics.bytesRelayed.inc({ direction: 'bridge' }, bytes),
    });
  }
}
