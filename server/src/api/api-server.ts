/**
 * The cloud server's HTTP front: authenticates every call with the user's access token, manages
 * the caller's proxy, and routes the caller's Ollama requests and bridge to that proxy only.
 *
 *   POST /api/proxy/start | POST /api/proxy/stop | GET /api/proxy/status
 *   ANY  /ollama/*        → the caller's proxy (Ollama API)
 *   GET  /ws/bridge       → WebSocket upgrade, spliced to the caller's proxy
 *   GET  /health, /metrics
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AuditLog } from '../audit.js';
import { wwwAuthenticate } from '../auth/jwt-authenticator.js';
import { closeNow, listenUrl, trackSockets } from '../http-lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import { ProxyStartRefused, type ProxyManager, type ProxyRecord } from '../manager/proxy-manager.js';
import { CONFIG_PATH, HEALTH_PATH, OLLAMA_PREFIX, PROXY_START_PATH, PROXY_STATUS_PATH, PROXY_STOP_PATH, type ClientConfig, type ProxyStopAnswer } from '@cloudtolocalllm/api-contract';
import { RENEW_PATH } from '@cloudtolocalllm/bridge/connection/protocol';
import { CLIENT_KEY_HEADER, isClientKey, parseClientKey, routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { bearerToken } from '../proxy/auth.js';
import { findRoute } from '@cloudtolocalllm/bridge/ingress/ollama-routes';
import { checkRequestTarget } from '@cloudtolocalllm/bridge/ingress/request-target';
import { NO_BRIDGE_MESSAGE } from '../proxy/relay.js';
import { endSocket, rawHttpError, sendOllamaError } from '../proxy/ollama-errors.js';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { AuthFailureLimiter, DEFAULT_AUTH_FAILURES, DEFAULT_KEY_FAILURES, type AuthFailureOptions } from './auth-failures.js';
import { forwardBridgeUpgrade, renewOnProxy } from './bridge-forward.js';
import { clientAddress } from './client-address.js';
import { answerPreflight, applyCors, type CorsOptions } from './cors.js';
import { readJsonBody } from './json-body.js';
import { DEFAULT_LIMITS, UserLimits, type LimitOptions } from './limits.js';
import { forwardOllamaRequest, type ForwardExtra } from './ollama-forward.js';
import type { ServerMetrics } from './server-metrics.js';

export type Verification =
  | { ok: true; subject: string; expiresAt?: number }
  | { ok: false; reason: string; message: string };

/** How a refused credential is answered: status, and Retry-After where waiting helps. */
function refusalOf(v: { reason: string }, retryAfterSec?: number): { status: number; reason: string; retryAfterSec?: number } {
  if (v.reason === 'jwks-unavailable') return { status: 503, reason: 'Service Unavailable', retryAfterSec: 5 };
  if (v.reason === 'too-many-failures') return { status: 429, reason: 'Too Many Requests', retryAfterSec: retryAfterSec ?? 60 };
  if (v.reason === 'duplicate-credentials') return { status: 400, reason: 'Bad Request' };
  return { status: 401, reason: 'Unauthorized' };
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
  /** Believe X-Real-IP from a loopback peer (nginx in front): client-address.ts. */
  trustProxy?: boolean;
  /** Public sign-in settings for clients (GET /api/config): where to sign in, for which API. */
  clientConfig?: () => ClientConfig | undefined;
  /** Extra routes served before the API's own (the embedded issuer, static pages). */
  fallback?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

const BRIDGE_ROUTE = '/ws/bridge';

/** A key's 401s from the proxy (key-set.ts) and the bridge (key-scope.ts): counted as failed attempts. */
const KEY_REFUSALS: ReadonlySet<string> = new Set(['key-invalid', 'key-expired', 'key-unknown']);

const sameSecret = (a: string, b: string): boolean => timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
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
  private readonly keyRoutes = new Map<string, string>();
  private readonly cors: CorsOptions;
  private readonly startedAt = Date.now();
  private readonly destroySockets: () => void;
  /** Routes served after the API's own (static pages); settable once the server knows its URL. */
  fallback: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;

  constructor(private readonly options: ApiServerOptions) {
    this.log = options.log ?? silentLogger;
    this.limits = new UserLimits(options.limits ?? DEFAULT_LIMITS);
    this.authFailures = new AuthFailureLimiter(options.authFailures ?? DEFAULT_AUTH_FAILURES, options.audit);
    this.keyFailures = new AuthFailureLimiter(options.keyFailures ?? DEFAULT_KEY_FAILURES, options.audit);
    this.cors = options.cors ?? { origins: ['*'] };
    this.server = http.createServer({
      maxHeaderSize: options.maxHeaderBytes ?? 16 * 1024,
      requestTimeout: 0, // blob uploads and long generations
      headersTimeout: 60_000,
      noDelay: true,
    });
    this.server.on('request', (req, res) => {
      this.onRequest(req, res).catch((e: unknown) => {
        this.log.error('request failed', { error: e instanceof Error ? e.message : String(e) });
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error; it has been logged' });
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
        return void socket.end(rawHttpError(431, 'Request Header Fields Too Large', `the request's headers are larger than the limit of ${options.maxHeaderBytes ?? 16 * 1024} bytes`));
      }
      socket.end(rawHttpError(400, 'Bad Request', `the request is not valid HTTP (${err.code ?? 'parse error'})`));
    });
    this.destroySockets = trackSockets(this.server);
  }

  listen(port = 0, host = '127.0.0.1'): Promise<string> {
    return listenUrl(this.server, port, host);
  }

  async close(): Promise<void> {
    await closeNow(this.server, this.destroySockets);
    this.authFailures.close();
    this.keyFailures.close();
  }

  /**
   * Verifies the caller's token. An address over its failure limit is refused before any check;
   * two Authorization headers are refused (proxies in front disagree on which one wins); every
   * failure is counted for the address and audited in its window's one line (auth-failures.ts).
   */
  private async authenticate(req: IncomingMessage, route: string): Promise<Verification & { retryAfterSec?: number }> {
    const address = clientAddress(req, this.options.trustProxy ?? false);
    const wait = this.authFailures.blocked(address, route);
    if (wait !== undefined) {
      this.options.metrics.limitRefusals.inc({ limit: 'auth-failures' });
      return { ok: false, reason: 'too-many-failures', message: `too many failed authentications from your address; retry in ${wait} s`, retryAfterSec: wait };
    }
    const credentials = headerCount(req, 'authorization');
    const v: Verification =
      credentials > 1
        ? { ok: false, reason: 'duplicate-credentials', message: `the request has ${credentials} Authorization headers; send exactly one` }
        : await this.options.verifier.verifyRequest(req.headers);
    if (!v.ok) {
      this.options.metrics.authFailures.inc({ reason: v.reason });
      // The issuer's keys being unreachable is not the caller's failure.
      if (v.reason !== 'jwks-unavailable') this.authFailures.failed(address, v.reason, route);
    }
    return v;
  }

  private refuseAuth(res: ServerResponse, v: { reason: string; message: string; retryAfterSec?: number }, ollamaShape: boolean): void {
    const refusal = refusalOf(v, v.retryAfterSec);
    if (refusal.status === 503) {
      sendJson(res, 503, { error: `sign-in cannot be checked right now: ${v.message}` }, { 'retry-after': '5' });
      return;
    }
    const headers: Record<string, string> = refusal.status === 401 ? { 'www-authenticate': wwwAuthenticate(v) } : {};
    if (refusal.retryAfterSec !== undefined) headers['retry-after'] = String(refusal.retryAfterSec);
    if (ollamaShape) sendOllamaError(res, refusal.status, `auth-${v.reason}`, v.message, headers);
    else sendJson(res, refusal.status, { error: v.message, reason: v.reason }, headers);
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    if (!rawUrl.startsWith('/')) return sendJson(res, 400, { error: 'absolute-form request targets are refused' });
    const path = rawUrl.split('?')[0] ?? '/';
    const isOllama = path === OLLAMA_PREFIX || path.startsWith(OLLAMA_PREFIX + '/');
    if (isOllama || path.startsWith('/api/')) {
      if (answerPreflight(req, res, this.cors)) return;
      applyCors(req, res, this.cors);
    }
    if (path === HEALTH_PATH) return this.health(req, res);
    if (path === '/metrics') return this.metrics(req, res);
    if (path === CONFIG_PATH) {
      if (req.method !== 'GET') return sendJson(res, 405, { error: 'use GET' }, { allow: 'GET' });
      const clientConfig = this.options.clientConfig?.();
      if (!clientConfig) return sendJson(res, 503, { error: 'the server is still starting; try again in a moment' }, { 'retry-after': '1' });
      return sendJson(res, 200, clientConfig);
    }
    if (path.startsWith('/api/proxy/')) return this.proxyApi(req, res, path);
    if (path === RENEW_PATH) return this.renewTunnel(req, res);
    if (isOllama) return this.ollama(req, res, rawUrl.slice(OLLAMA_PREFIX.length) || '/');
    if (path === BRIDGE_ROUTE) {
      return sendJson(res, 426, { error: `${BRIDGE_ROUTE} is the bridge's WebSocket endpoint; it needs a WebSocket upgrade` }, { upgrade: 'websocket' });
    }
    if ((this.fallback ?? this.options.fallback)?.(req, res)) return;
    sendJson(res, 404, { error: `no such endpoint: ${req.method} ${path}` });
  }

  private health(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'use GET' }, { allow: 'GET, HEAD' });
    sendJson(res, 200, {
      status: 'ok',
      runtime: this.options.manager.runtimeKind,
      proxies: this.options.manager.size,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
    });
  }

  private async metrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'use GET' }, { allow: 'GET' });
    const token = this.options.metricsToken;
    if (!token && this.options.metricsRequireToken) {
      return sendJson(res, 403, { error: 'metrics are off: this server needs a METRICS_TOKEN to serve them (CTLL_METRICS_REQUIRE_TOKEN=1)' });
    }
    if (token && !sameSecret(req.headers.authorization ?? '', `Bearer ${token}`)) {
      return sendJson(res, 401, { error: 'metrics need the operator\'s METRICS_TOKEN as a Bearer token' }, { 'www-authenticate': 'Bearer realm="metrics"' });
    }
    const text = await this.options.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': this.options.metrics.registry.contentType });
    res.end(text);
  }

  /** Authenticates a JSON API call and takes its request token; answers and returns undefined when refused. */
  private async admit(req: IncomingMessage, res: ServerResponse, route: string): Promise<{ v: { subject: string; expiresAt?: number }; user: string } | undefined> {
    const v = await this.authenticate(req, route);
    if (!v.ok) {
      req.resume();
      this.refuseAuth(res, v, false);
      return undefined;
    }
    const user = userHash(v.subject);
    const rate = this.limits.takeRequest(user);
    if (!rate.ok) {
      req.resume();
      this.options.metrics.limitRefusals.inc({ limit: rate.limit });
      sendJson(res, 429, { error: rate.message }, { 'retry-after': String(rate.retryAfterSec) });
      return undefined;
    }
    return { v, user };
  }

  private async proxyApi(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const routes: Record<string, string> = { [PROXY_START_PATH]: 'POST', [PROXY_STOP_PATH]: 'POST', [PROXY_STATUS_PATH]: 'GET' };
    const method = routes[path];
    if (!method) return sendJson(res, 404, { error: `no such endpoint: ${path}; use /api/proxy/start, /api/proxy/stop or /api/proxy/status` });
    if (req.method !== method) {
      req.resume();
      return sendJson(res, 405, { error: `${req.method} is not allowed on ${path}; use ${method}` }, { allow: method });
    }
    const caller = await this.admit(req, res, 'api');
    if (!caller) return;
    const { v, user } = caller;
    if (method === 'POST') {
      const body = await readJsonBody(req, 16 * 1024);
      if (!body.ok) return sendJson(res, body.status, { error: body.message });
    }
    const { manager } = this.options;
    if (path === PROXY_STATUS_PATH) return sendJson(res, 200, manager.view(v.subject));
    if (path === PROXY_STOP_PATH) {
      const stopped = await manager.stop(v.subject);
      return sendJson(res, 200, { ...manager.view(v.subject), stopped } satisfies ProxyStopAnswer);
    }
    try {
      const existed = manager.record(user)?.state === 'running';
      await manager.ensure(v.subject);
      sendJson(res, existed ? 200 : 201, manager.view(v.subject));
    } catch (e) {
      const refused = e instanceof ProxyStartRefused ? e : undefined;
      sendJson(res, refused?.status ?? 503, { error: e instanceof Error ? e.message : String(e) }, { 'retry-after': String(refused?.retryAfterSec ?? 10) });
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
      return sendJson(res, 405, { error: `use POST on ${RENEW_PATH}` }, { allow: 'POST' });
    }
    const caller = await this.admit(req, res, 'bridge');
    if (!caller) return;
    const { v, user } = caller;
    const body = await readJsonBody(req, 4096);
    if (!body.ok) return sendJson(res, body.status, { error: body.message });
    const tunnel = body.value['tunnel'];
    if (typeof tunnel !== 'string' || !tunnel) return sendJson(res, 400, { error: 'expected {"tunnel": "<the id from the 101 answer>"}' });
    const record = this.options.manager.record(user);
    if (!record?.instance || record.state !== 'running' || v.expiresAt === undefined) {
      return sendJson(res, 409, { error: 'no tunnel of yours is open on this server; the bridge reconnects' });
    }
    const answer = await renewOnProxy({ endpoint: record.instance.endpoint, secret: record.secret }, tunnel, v.expiresAt * 1000);
    this.options.audit.record({ action: 'bridge.renew', result: answer.status === 200 ? 'ok' : 'refused', userHash: user, address: clientAddress(req, this.options.trustProxy ?? false) });
    sendJson(res, answer.status, answer.body);
  }

  private async ollama(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const presented = bearerToken(req.headers);
    if (presented !== undefined && isClientKey(presented)) return this.ollamaWithKey(req, res, path, presented);
    const v = await this.authenticate(req, 'ollama');
    if (!v.ok) {
      req.resume();
      return this.refuseAuth(res, v, true);
    }
    this.forwardToProxy(req, res, path, userHash(v.subject));
  }

  /**
   * A client key (issue 9): its form and checksum are checked here, it is routed by its routing
   * part to that user's proxy only, and the proxy checks its secret against the set the user's
   * bridge sent. Failures count per client address and per user; the key is never logged.
   */
  private ollamaWithKey(req: IncomingMessage, res: ServerResponse, path: string, presented: string): void {
    const address = clientAddress(req, this.options.trustProxy ?? false);
    const refuse = (reason: string, message: string, retryAfterSec?: number): void => {
      req.resume();
      this.refuseAuth(res, { reason, message, ...(retryAfterSec !== undefined ? { retryAfterSec } : {}) }, true);
    };
    const failed = (reason: string, route?: string): void => {
      this.options.metrics.authFailures.inc({ reason });
      this.authFailures.failed(address, reason, 'ollama-key');
      if (route) this.keyFailures.failed(`keys:${route}`, reason, 'ollama-key');
    };
    const wait = this.authFailures.blocked(address, 'ollama-key');
    if (wait !== undefined) {
      this.options.metrics.limitRefusals.inc({ limit: 'auth-failures' });
      return refuse('too-many-failures', `too many failed authentications from your address; retry in ${wait} s`, wait);
    }
    const credentials = headerCount(req, 'authorization');
    if (credentials > 1) return refuse('duplicate-credentials', `the request has ${credentials} Authorization headers; send exactly one`);
    const key = parseClientKey(presented);
    if (!key.ok) {
      failed(key.reason);
      return refuse(key.reason, key.message);
    }
    const userWait = this.keyFailures.blocked(`keys:${key.route}`, 'ollama-key');
    if (userWait !== undefined) {
      this.options.metrics.limitRefusals.inc({ limit: 'key-failures' });
      return refuse('too-many-failures', `too many failed attempts with keys of this endpoint; retry in ${userWait} s`, userWait);
    }
    const user = this.keyRoutes.get(key.route);
    if (user === undefined) {
      req.resume();
      return sendOllamaError(res, 503, 'no-bridge', NO_BRIDGE_MESSAGE, { 'retry-after': '5' });
    }
    this.forwardToProxy(req, res, path, user, {
      headers: { [CLIENT_KEY_HEADER]: presented },
      answered: (status, refusal) => {
        // Only the refusals the proxy and bridge make: a bridge's answer must not pick metric labels.
        if (status !== 401 || refusal === undefined || !KEY_REFUSALS.has(refusal)) return undefined;
        failed(refusal, key.route);
        const why = refusal === 'key-expired' ? 'the key has expired' : 'the key is not valid for this endpoint';
        return { 'www-authenticate': wwwAuthenticate({ reason: refusal, message: why }) };
      },
    });
  }

  /** Sends an authenticated `/ollama/*` request to the proxy of `user`, within the user's limits. */
  private forwardToProxy(req: IncomingMessage, res: ServerResponse, path: string, user: string, extra?: ForwardExtra): void {
    const rate = this.limits.takeRequest(user);
    if (!rate.ok) {
      req.resume();
      this.options.metrics.limitRefusals.inc({ limit: rate.limit });
      return sendOllamaError(res, 429, 'rate-limit', rate.message, { 'retry-after': String(rate.retryAfterSec) });
    }
    // Only Ollama's API goes on: the proxy's own endpoints (/health, /metrics, /bridge) share
    // its path space and must not answer through /ollama/health (the bridge refuses the rest again).
    const target = checkRequestTarget(path, undefined, undefined, '');
    if (target.ok && !findRoute(target.path)) {
      req.resume();
      return sendOllamaError(res, 404, 'not-ollama-api', `${target.path} is not part of the Ollama API`);
    }
    const record = this.options.manager.record(user);
    if (!record || record.state !== 'running' || !record.instance) {
      req.resume();
      return sendOllamaError(res, 503, 'no-bridge', NO_BRIDGE_MESSAGE, { 'retry-after': '5' });
    }
    const { manager } = this.options;
    const slot = this.limits.acquire('request', user, res, { taken: () => manager.requestStarted(user), released: () => manager.requestEnded(user) });
    if (!slot.ok) {
      req.resume();
      this.options.metrics.limitRefusals.inc({ limit: slot.limit });
      return sendOllamaError(res, 429, 'concurrency-limit', slot.message, { 'retry-after': String(slot.retryAfterSec) });
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
      endSocket(socket, rawHttpError(404, 'Not Found', `WebSocket connections are only accepted on ${BRIDGE_ROUTE}`));
      return;
    }
    let v = await this.authenticate(req, 'bridge');
    // A tunnel lives until its credential expires: one past its expiry on our clock (accepted
    // within the clock tolerance) would be a tunnel of no length, reconnecting for ever.
    if (v.ok && v.expiresAt !== undefined && v.expiresAt * 1000 <= Date.now()) {
      this.options.metrics.authFailures.inc({ reason: 'expired' });
      v = { ok: false, reason: 'expired', message: 'the token has expired; a tunnel needs a token that is valid now (sign in again)' };
    }
    if (!v.ok) {
      const refusal = refusalOf(v, v.retryAfterSec);
      const extra = refusal.status === 401 || refusal.status === 503 ? `WWW-Authenticate: ${wwwAuthenticate(v)}\r\n` : '';
      const retry = refusal.retryAfterSec !== undefined ? `Retry-After: ${refusal.retryAfterSec}\r\n` : '';
      endSocket(socket, rawHttpError(refusal.status, refusal.reason, v.message).replace('\r\n', `\r\n${extra}${retry}`));
      return;
    }
    const user = userHash(v.subject);
    this.keyRoutes.set(routeOf(user), user);
    // Held until the bridge's socket closes, whichever way this upgrade ends.
    const slot = this.limits.acquire('bridge', user, socket);
    if (!slot.ok) {
      this.options.metrics.limitRefusals.inc({ limit: slot.limit });
      endSocket(socket, rawHttpError(429, 'Too Many Requests', slot.message));
      return;
    }
    let record: ProxyRecord;
    try {
      // A bridge connecting provisions its proxy.
      record = await this.options.manager.ensure(v.subject);
    } catch (e) {
      const refused = e instanceof ProxyStartRefused ? e : undefined;
      const status = refused?.status ?? 503;
      const response = rawHttpError(status, status === 429 ? 'Too Many Requests' : 'Service Unavailable', e instanceof Error ? e.message : String(e));
      endSocket(socket, response.replace('\r\n', `\r\nRetry-After: ${refused?.retryAfterSec ?? 10}\r\n`));
      return;
    }
    if (socket.destroyed || !record.instance) {
      socket.destroy();
      return;
    }
    const { manager, metrics, audit } = this.options;
    const address = clientAddress(req, this.options.trustProxy ?? false);
    const client = String(req.headers['user-agent'] ?? 'unknown').slice(0, 120);
    const terms = { address, ...(v.expiresAt !== undefined ? { expiresAt: v.expiresAt * 1000 } : {}) };
    forwardBridgeUpgrade(req, socket, head, { endpoint: record.instance.endpoint, secret: record.secret }, terms, {
      opened: () => {
        manager.bridgeOpened(user);
        metrics.bridgesConnected.inc();
        audit.record({ action: 'bridge.connect', result: 'ok', userHash: user, address, client });
      },
      closed: () => {
        manager.bridgeClosed(user);
        metrics.bridgesConnected.dec();
        audit.record({ action: 'bridge.disconnect', result: 'ok', userHash: user, address });
      },
      activity: (bytes) => {
        manager.touch(user);
        metrics.bytesRelayed.inc({ direction: 'bridge' }, bytes);
      },
    });
  }
}
