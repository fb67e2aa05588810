/**
 * One user's streaming proxy: accepts that user's bridge on BRIDGE_PATH and serves the whole
 * Ollama HTTP API by relaying every other request over the bridge. Writes nothing to disk.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { DEFAULT_HEARTBEAT, type HeartbeatOptions } from '@cloudtolocalllm/bridge/connection/heartbeat';
import {
  BRIDGE_PATH,
  CLIENT_ADDRESS_HEADER,
  DEFAULT_MACHINE_NAME,
  MACHINE_HEADER,
  machineNameProblem,
  MAX_MACHINES_HEADER,
  CREDENTIAL_EXPIRES_HEADER,
  PROXY_COMPUTERS_PATH,
  EDGE_TUNNEL_HEADER,
  PROXY_RENEW_PATH,
  h2UpgradeFor,
  subprotocolFor,
  TUNNEL_EXPIRES_HEADER,
  TUNNEL_ID_HEADER,
  TUNNEL_PROTOCOL_VERSION,
  tunnelUpgradeOf,
  versionOf,
  type TunnelTransport,
} from '@cloudtolocalllm/bridge/connection/protocol';
import { closeNow, keepIdleConnections, listenUrl, trackSockets } from '../http-lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import type { Authenticator } from './auth.js';
import { readJsonBody } from '../api/json-body.js';
import { BridgeLink, type TunnelTerms } from './bridge-link.js';
import { BridgeLinks } from './bridge-links.js';
import { PROXY_LINKS_PATH, serveLinkEvents } from './link-events.js';
import { Dispatcher } from './dispatch.js';
import { authCode, type ErrorCode } from '../errors.js';
import { rawHttpError, sendOllamaError } from './ollama-errors.js';
import { ProxyMetrics } from './proxy-metrics.js';
import { Relay } from './relay.js';
import { CLIENT_KEY_HEADER, KEY_TOKENS_TRAILER } from '@cloudtolocalllm/bridge/connection/client-key';
import { DEFAULT_LIMITS, UserLimits } from '../api/limits.js';
import { checkKeyAccess, countsRelayed, keyHeaders, refuseOutsideMachines, reportCutUsage, reportUsage } from './key-access.js';

export interface StreamingProxyOptions {
  authenticator: Authenticator;
  heartbeat?: HeartbeatOptions;
  log?: Logger;
  /** Largest request head accepted, in bytes (Node's default is 16 KiB). */
  maxHeaderBytes?: number;
  /** Collect process metrics (CPU, memory) too: on for a proxy in its own container. */
  processMetrics?: boolean;
  /** How long a request waits for the bridge's answer head before a 504 (relay.ts). */
  responseHeadTimeoutMs?: number;
  /**
   * How many computers may be connected at once when the api-backend does not say (a proxy run
   * alone); behind it, its CTLL_MAX_BRIDGES comes on each upgrade (MAX_MACHINES_HEADER).
   */
  maxMachines?: number;
  /**
   * The tunnel transports this proxy takes (protocol.ts); both by default. Without `h2` a bridge
   * asking for it is answered `websocket-required` and falls back, as from an older proxy.
   */
  transports?: readonly TunnelTransport[];
  /**
   * Ollama requests in flight at once (CTLL_MAX_CONCURRENT_REQUESTS, the user's limit): kept
   * here, not only in the api-backend, because nginx sends most requests straight to this proxy
   * (docs/edge-routing.md). Unlimited when unset.
   */
  maxConcurrentRequests?: number;
}

/** A proxy run alone allows as many computers as the api-backend does by default (limits.ts). */
export const DEFAULT_MAX_MACHINES = 4;

/** One connected computer, as /health and the api-backend's /api/proxy/status show it. */
export interface ComputerHealth {
  name: string;
  /** ISO 8601. */
  connectedSince: string | null;
  address: string | null;
  inFlight: number;
  /** How its tunnel travels (protocol.ts): `h2`, or `websocket` where a fallback was needed. */
  transport: TunnelTransport | null;
  /** Its models as last read (only while several computers are connected; else empty). */
  models: string[];
}

export interface ProxyHealth {
  status: 'ok';
  bridgeConnected: boolean;
  bridgeConnectedSince: string | null;
  activeStreams: number;
  uptimeSeconds: number;
  lastActivity: string;
  protocolVersion: number;
}

export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;

export class StreamingProxy {
  readonly server: http.Server;
  readonly metrics: ProxyMetrics;
  /** The user's connected computers, one link each (issue 10). */
  readonly links: BridgeLinks;
  private readonly relay: Relay;
  private readonly dispatcher: Dispatcher;
  private readonly wss: WebSocketServer;
  private readonly log: Logger;
  private readonly startedAt = Date.now();
  private lastActivityAt = Date.now();
  private readonly destroySockets: () => void;
  /** Upgrades being accepted: what their 101 answer tells the bridge. */
  private readonly pendingTunnels = new WeakMap<IncomingMessage, { id: string; terms: TunnelTerms; name: string }>();
  /** The user's concurrent-request slots (maxConcurrentRequests); none without a limit. */
  private readonly requestSlots: UserLimits | undefined;

  constructor(private readonly options: StreamingProxyOptions) {
    this.log = options.log ?? silentLogger;
    this.metrics = new ProxyMetrics(options.processMetrics ?? false);
    this.requestSlots = options.maxConcurrentRequests === undefined ? undefined : new UserLimits({ ...DEFAULT_LIMITS, maxConcurrentRequests: options.maxConcurrentRequests });
    this.links = new BridgeLinks(options.heartbeat ?? DEFAULT_HEARTBEAT, this.log);
    this.relay = new Relay(this.metrics, options.responseHeadTimeoutMs);
    this.dispatcher = new Dispatcher(this.links, this.relay);
    this.links.on('activity', () => this.touch());
    this.links.on('connected', () => this.metrics.bridgeConnected.set(this.links.list().length));
    // Counted once the leaving link is out of the list.
    this.links.on('disconnected', () => queueMicrotask(() => this.metrics.bridgeConnected.set(this.links.list().length)));
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: 64 << 20,
      handleProtocols: () => subprotocolFor(TUNNEL_PROTOCOL_VERSION),
    });
    this.wss.on('headers', (headers, req) => {
      const pending = this.pendingTunnels.get(req);
      if (!pending) return;
      headers.push(`${TUNNEL_ID_HEADER}: ${pending.id}`);
      if (pending.terms.expiresAt !== undefined) headers.push(`${TUNNEL_EXPIRES_HEADER}: ${pending.terms.expiresAt}`);
    });
    this.server = http.createServer({
      maxHeaderSize: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
      // Uploads of multi-gigabyte blobs and many-minute generations: no total request timeout.
      requestTimeout: 0,
      headersTimeout: 60_000,
      noDelay: true,
    });
    keepIdleConnections(this.server);
    this.server.on('request', (req, res) => void this.onRequest(req, res));
    this.server.on('upgrade', (req, socket, head) => void this.onUpgrade(req, socket as Socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
    this.destroySockets = trackSockets(this.server);
  }

  /** Last time a request or a bridge frame passed: the cloud server's idle cleanup reads it. */
  get lastActivity(): number {
    return this.lastActivityAt;
  }

  health(): ProxyHealth {
    const since = this.links.connectedSince;
    return {
      status: 'ok',
      bridgeConnected: this.links.connected,
      bridgeConnectedSince: since === undefined ? null : new Date(since).toISOString(),
      activeStreams: this.relay.active,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      lastActivity: new Date(this.lastActivityAt).toISOString(),
      protocolVersion: TUNNEL_PROTOCOL_VERSION,
    };
  }

  /**
   * The connected computers (issue 10), for the api-backend's /api/proxy/status only: names,
   * models and addresses are the user's, so not in the unauthenticated /health.
   */
  computers(): ComputerHealth[] {
    const iso = (t: number | undefined): string | null => (t === undefined ? null : new Date(t).toISOString());
    return this.links.list().map((c) => ({
      name: c.name,
      connectedSince: iso(c.link.connectedSince),
      address: c.link.address ?? null,
      inFlight: c.link.inFlight,
      transport: c.link.transport ?? null,
      models: [...c.catalog.models].sort(),
    }));
  }

  listen(port = 0, host = '127.0.0.1'): Promise<string> {
    return listenUrl(this.server, port, host);
  }

  /** Closes the bridge (telling it the proxy is stopping) and every client connection. */
  async close(): Promise<void> {
    this.links.stop();
    this.wss.close();
    await closeNow(this.server, this.destroySockets);
  }

  private touch(): void {
    this.lastActivityAt = Date.now();
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if ((path === '/health' || path === '/metrics') && (req.method === 'GET' || req.method === 'HEAD')) {
      if (path === '/health') {
        const body = JSON.stringify(this.health());
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      } else {
        const text = await this.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      }
      return;
    }
    if (path === PROXY_RENEW_PATH) return this.onRenew(req, res);
    if (path === PROXY_COMPUTERS_PATH) return this.onComputers(req, res);
    if (path === PROXY_LINKS_PATH) return this.onLinks(req, res);
    if (path === BRIDGE_PATH) {
      sendOllamaError(res, 'websocket-required', `${BRIDGE_PATH} is the bridge's WebSocket endpoint; it needs a WebSocket upgrade`, {
        upgrade: 'websocket',
      });
      return;
    }
    this.touch();
    if (!(req.url ?? '').startsWith('/')) {
      // Absolute-form ("GET http://host/...") and asterisk-form targets: this is no forward proxy.
      sendOllamaError(res, 'absolute-form', 'absolute-form or asterisk-form request targets are refused; send a path like /api/chat');
      req.resume();
      return;
    }
    const auth = await this.options.authenticator.authenticate(req.headers, 'ollama');
    if (!auth.ok) {
      this.metrics.authFailures.inc({ reason: auth.reason });
      sendOllamaError(res, authCode(auth.reason), auth.message, {
        'www-authenticate': `Bearer realm="CloudToLocalLLM", error="invalid_token"`,
      });
      req.resume();
      return;
    }
    if (!this.admitRequest(req, res, auth.principal.subject)) return;
    // A client key, passed on by the api-backend or by nginx (edge routing), whose hop carries this proxy's secret: checked
    // against the key sets of the connected computers here, then relayed with its id (and scope)
    // so the computer that serves it applies the key's scopes with its own policy. A key whose
    // computer sent its scope is valid on all of the user's computers (within its computer
    // list); one without (an older bridge) on the computers whose set holds it (key-access.ts).
    const presented = req.headers[CLIENT_KEY_HEADER];
    const computers = this.links.list();
    if (presented !== undefined && computers.length > 0) {
      const access = await checkKeyAccess(String(presented), computers);
      if (!access.ok) {
        this.metrics.authFailures.inc({ reason: access.reason });
        sendOllamaError(res, access.reason, access.message, { 'www-authenticate': `Bearer realm="CloudToLocalLLM", error="invalid_token"` });
        req.resume();
        return;
      }
      const pinned = req.headers[MACHINE_HEADER];
      if (refuseOutsideMachines(res, access, pinned === undefined ? undefined : String(pinned), computers)) {
        req.resume();
        return;
      }
      return this.dispatcher.handle(req, res, access.pool, {
        own: (computer) => keyHeaders(access, computer),
        ...(access.scope?.models ? { models: access.scope.models } : {}),
        served: (computer, trailers) => reportUsage(access, computer, trailers[KEY_TOKENS_TRAILER]),
        countsRelayed: (computer) => countsRelayed(access, computer),
        cut: (relayed) => reportCutUsage(access, relayed),
      });
    }
    return this.dispatcher.handle(req, res, computers);
  }

  /**
   * Takes one of the user's concurrent-request slots until the response closes, whichever way it
   * ends, with the api-backend's own slot counter and refusal (limits.ts): a proxy has one user.
   */
  private admitRequest(req: IncomingMessage, res: ServerResponse, owner: string): boolean {
    const slot = this.requestSlots?.acquire('request', owner, res);
    if (!slot || slot.ok) return true;
    this.metrics.requests.inc({ outcome: 'concurrency-limit' });
    sendOllamaError(res, 'concurrency-limit', slot.message, { 'retry-after': String(slot.retryAfterSec) });
    req.resume();
    return false;
  }

  private async onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const refuse = (code: ErrorCode, message: string, result: string, extra = ''): void => {
      this.metrics.bridgeConnections.inc({ result });
      if (!socket.writable) return;
      const response = rawHttpError(code, message);
      socket.end(extra ? response.replace('\r\n', `\r\n${extra}\r\n`) : response);
    };
    const path = (req.url ?? '/').split('?')[0];
    if (path !== BRIDGE_PATH) {
      refuse('not-found', `WebSocket connections are only accepted on ${BRIDGE_PATH}`, 'wrong-path');
      return;
    }
    const upgrade = tunnelUpgradeOf(req.headers.upgrade);
    const takes = this.options.transports ?? ['h2', 'websocket'];
    if (!upgrade || (upgrade.transport === 'h2' && !takes.includes('h2'))) {
      refuse('websocket-required', `${BRIDGE_PATH} takes the bridge's tunnel as a WebSocket${upgrade ? '' : ` or as ${h2UpgradeFor(TUNNEL_PROTOCOL_VERSION)}`}; this request asked for "${String(req.headers.upgrade ?? '').slice(0, 60)}"`, 'wrong-upgrade', 'Upgrade: websocket');
      return;
    }
    if (upgrade.transport === 'websocket' && !takes.includes('websocket')) {
      refuse('bad-request', `this proxy takes the bridge's tunnel only as ${h2UpgradeFor(TUNNEL_PROTOCOL_VERSION)}`, 'wrong-upgrade');
      return;
    }
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const versions = upgrade.transport === 'h2' ? upgrade.versions : offered.map(versionOf).filter((v): v is number => v !== undefined);
    if (!versions.includes(TUNNEL_PROTOCOL_VERSION)) {
      const theirs = versions.length ? `v${Math.max(...versions)}` : 'no known version';
      const newer = versions.length > 0 && Math.max(...versions) > TUNNEL_PROTOCOL_VERSION;
      const message = newer
        ? `update required: your desktop app speaks tunnel protocol ${theirs}, this cloud proxy only v${TUNNEL_PROTOCOL_VERSION}; the cloud server must be updated`
        : `update required: your desktop app speaks tunnel protocol ${theirs}, this cloud proxy needs v${TUNNEL_PROTOCOL_VERSION}; update CloudToLocalLLM on your computer`;
      this.log.warn('bridge refused: protocol version mismatch', { offered: versions, needed: TUNNEL_PROTOCOL_VERSION });
      refuse('update-required', message, 'version-mismatch', upgrade.transport === 'h2' ? `Upgrade: ${h2UpgradeFor(TUNNEL_PROTOCOL_VERSION)}` : `Upgrade: websocket`);
      return;
    }
    const auth = await this.options.authenticator.authenticate(req.headers, 'bridge');
    if (!auth.ok) {
      this.metrics.authFailures.inc({ reason: auth.reason });
      this.log.warn('bridge refused: credentials', { reason: auth.reason });
      refuse(authCode(auth.reason), auth.message, `auth-${auth.reason}`,
        'WWW-Authenticate: Bearer realm="CloudToLocalLLM", error="invalid_token"');
      return;
    }
    if (socket.destroyed) return;
    // Set by the api-backend, which verified the user's token; the request carries this proxy's
    // secret, so a bridge cannot set them itself (the api-backend passes none of its headers on).
    // The computer's name: the same name replaces its older link, another joins (up to the
    // user's limit, which the api-backend tells with its secret; a proxy alone has its own).
    const named = req.headers[MACHINE_HEADER];
    const name = typeof named === 'string' ? named : DEFAULT_MACHINE_NAME;
    const nameProblem = machineNameProblem(name);
    if (nameProblem) {
      refuse('machine-name-invalid', `${nameProblem}; start the bridge with --name NAME`, 'machine-name-invalid');
      return;
    }
    const maxHeader = Number(req.headers[MAX_MACHINES_HEADER]);
    const max = Number.isInteger(maxHeader) && maxHeader > 0 ? maxHeader : (this.options.maxMachines ?? DEFAULT_MAX_MACHINES);
    const full = this.links.refusal(name, max);
    if (full) {
      this.log.warn('bridge refused: too many computers', { max });
      refuse('machine-limit', full, 'machine-limit');
      return;
    }
    const expires = Number(req.headers[CREDENTIAL_EXPIRES_HEADER]);
    const address = req.headers[CLIENT_ADDRESS_HEADER];
    const terms: TunnelTerms = {
      address: typeof address === 'string' && address ? address.slice(0, 64) : (socket.remoteAddress ?? 'unknown'),
      client: String(req.headers['user-agent'] ?? 'unknown').slice(0, 120),
      edge: req.headers[EDGE_TUNNEL_HEADER] === '1',
      ...(Number.isFinite(expires) && expires > 0 ? { expiresAt: expires } : {}),
    };
    const id = BridgeLink.newTunnelId();
    /** Counts the acceptance; returns why the computer cannot join after all, if so. */
    const lateRefusal = (): string | undefined => {
      this.metrics.bridgeConnections.inc({ result: 'accepted' });
      this.touch();
      // Checked again: another computer may have joined while this one was being accepted.
      const late = this.links.refusal(name, max);
      if (late) this.log.warn('bridge refused: too many computers', { max });
      return late;
    };
    if (upgrade.transport === 'h2') {
      const answer = [
        'HTTP/1.1 101 Switching Protocols',
        'Connection: Upgrade',
        `Upgrade: ${h2UpgradeFor(TUNNEL_PROTOCOL_VERSION)}`,
        `${TUNNEL_ID_HEADER}: ${id}`,
        ...(terms.expiresAt !== undefined ? [`${TUNNEL_EXPIRES_HEADER}: ${terms.expiresAt}`] : []),
      ];
      // HTTP/2 takes the socket only once the 101 is written: native HTTP/2 on a socket with a
      // write still pending fails an assertion and aborts the process (Node 20, seen on TLS).
      socket.write(`${answer.join('\r\n')}\r\n\r\n`, () => {
        if (socket.destroyed) return;
        if (lateRefusal() !== undefined) return void socket.destroy();
        this.links.attach({ transport: 'h2', socket, head }, id, terms, name);
      });
      return;
    }
    this.pendingTunnels.set(req, { id, terms, name });
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const late = lateRefusal();
      if (late !== undefined) {
        ws.close(1008, late.slice(0, 120));
        return;
      }
      this.links.attach({ transport: 'websocket', ws }, id, terms, name);
    });
  }

  /** GET /computers: the connected computers, for the api-backend (with this proxy's secret). */
  private async onComputers(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!(await this.apiBackendGet(req, res))) return;
    const text = JSON.stringify({ computers: this.computers() });
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  /** GET /links: the tunnels' opening and closing as they happen (link-events.ts), for the api-backend. */
  private async onLinks(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (await this.apiBackendGet(req, res)) serveLinkEvents(res, this.links);
  }

  /** A GET of the api-backend's own, with this proxy's secret; refuses (and says why) anything else. */
  private async apiBackendGet(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    req.resume();
    if (req.method !== 'GET') {
      sendOllamaError(res, 'method-not-allowed', 'use GET', { allow: 'GET' });
      return false;
    }
    const auth = await this.options.authenticator.authenticate(req.headers, 'bridge');
    if (!auth.ok) {
      this.metrics.authFailures.inc({ reason: auth.reason });
      sendOllamaError(res, authCode(auth.reason), auth.message);
      return false;
    }
    return true;
  }

  /** POST /tunnel/renew {tunnel, expiresAt}: the api-backend verified a fresh credential of this user. */
  private async onRenew(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return sendOllamaError(res, 'method-not-allowed', 'use POST', { allow: 'POST' });
    const auth = await this.options.authenticator.authenticate(req.headers, 'bridge');
    if (!auth.ok) {
      req.resume();
      this.metrics.authFailures.inc({ reason: auth.reason });
      return sendOllamaError(res, authCode(auth.reason), auth.message);
    }
    const body = await readJsonBody(req, 4096);
    if (!body.ok) return sendOllamaError(res, body.code, body.message);
    const { tunnel, expiresAt } = body.value as { tunnel?: unknown; expiresAt?: unknown };
    if (typeof tunnel !== 'string' || typeof expiresAt !== 'number') {
      return sendOllamaError(res, 'bad-request', 'expected {"tunnel": "<id>", "expiresAt": <ms>}');
    }
    const deadline = this.links.renew(tunnel, expiresAt);
    if (deadline === undefined) return sendOllamaError(res, 'no-such-tunnel', 'this tunnel is not open on your proxy any more; the bridge reconnects');
    const text = JSON.stringify({ expiresAt: deadline });
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      const limit = this.options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
      socket.end(rawHttpError('headers-too-large', `the request's headers are larger than the limit of ${limit} bytes`));
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT') {
      socket.end(rawHttpError('headers-timeout', 'the request headers did not arrive in time'));
      return;
    }
    socket.end(rawHttpError('not-http', `the request is not valid HTTP (${err.code ?? 'parse error'})`));
  }
}
