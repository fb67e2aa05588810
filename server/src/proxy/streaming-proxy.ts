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
  CREDENTIAL_EXPIRES_HEADER,
  PROXY_RENEW_PATH,
  subprotocolFor,
  TUNNEL_EXPIRES_HEADER,
  TUNNEL_ID_HEADER,
  TUNNEL_PROTOCOL_VERSION,
  versionOf,
} from '@cloudtolocalllm/bridge/connection/protocol';
import { closeNow, listenUrl, trackSockets } from '../http-lifecycle.js';
import { silentLogger, type Logger } from '../log.js';
import type { Authenticator } from './auth.js';
import { readJsonBody } from '../api/json-body.js';
import { BridgeLink, type TunnelTerms } from './bridge-link.js';
import { authCode, type ErrorCode } from '../errors.js';
import { rawHttpError, sendOllamaError } from './ollama-errors.js';
import { ProxyMetrics } from './proxy-metrics.js';
import { Relay } from './relay.js';

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
  readonly link: BridgeLink;
  private readonly relay: Relay;
  private readonly wss: WebSocketServer;
  private readonly log: Logger;
  private readonly startedAt = Date.now();
  private lastActivityAt = Date.now();
  private readonly destroySockets: () => void;
  /** Upgrades being accepted: what their 101 answer tells the bridge. */
  private readonly pendingTunnels = new WeakMap<IncomingMessage, { id: string; terms: TunnelTerms }>();

  constructor(private readonly options: StreamingProxyOptions) {
    this.log = options.log ?? silentLogger;
    this.metrics = new ProxyMetrics(options.processMetrics ?? false);
    this.link = new BridgeLink(options.heartbeat ?? DEFAULT_HEARTBEAT, this.log);
    this.relay = new Relay(this.link, this.metrics, options.responseHeadTimeoutMs);
    this.link.on('activity', () => this.touch());
    this.link.on('connected', () => this.metrics.bridgeConnected.set(1));
    this.link.on('disconnected', () => this.metrics.bridgeConnected.set(0));
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
    const since = this.link.connectedSince;
    return {
      status: 'ok',
      bridgeConnected: this.link.connected,
      bridgeConnectedSince: since === undefined ? null : new Date(since).toISOString(),
      activeStreams: this.relay.active,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      lastActivity: new Date(this.lastActivityAt).toISOString(),
      protocolVersion: TUNNEL_PROTOCOL_VERSION,
    };
  }

  listen(port = 0, host = '127.0.0.1'): Promise<string> {
    return listenUrl(this.server, port, host);
  }

  /** Closes the bridge (telling it the proxy is stopping) and every client connection. */
  async close(): Promise<void> {
    this.link.close();
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
    this.relay.handle(req, res);
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
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const versions = offered.map(versionOf).filter((v): v is number => v !== undefined);
    if (!versions.includes(TUNNEL_PROTOCOL_VERSION)) {
      const theirs = versions.length ? `v${Math.max(...versions)}` : 'no known version';
      const newer = versions.length > 0 && Math.max(...versions) > TUNNEL_PROTOCOL_VERSION;
      const message = newer
        ? `update required: your desktop app speaks tunnel protocol ${theirs}, this cloud proxy only v${TUNNEL_PROTOCOL_VERSION}; the cloud server must be updated`
        : `update required: your desktop app speaks tunnel protocol ${theirs}, this cloud proxy needs v${TUNNEL_PROTOCOL_VERSION}; update CloudToLocalLLM on your computer`;
      this.log.warn('bridge refused: protocol version mismatch', { offered: versions, needed: TUNNEL_PROTOCOL_VERSION });
      refuse('update-required', message, 'version-mismatch', `Upgrade: websocket`);
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
    const expires = Number(req.headers[CREDENTIAL_EXPIRES_HEADER]);
    const address = req.headers[CLIENT_ADDRESS_HEADER];
    const terms: TunnelTerms = {
      address: typeof address === 'string' && address ? address.slice(0, 64) : (socket.remoteAddress ?? 'unknown'),
      ...(Number.isFinite(expires) && expires > 0 ? { expiresAt: expires } : {}),
    };
    const id = BridgeLink.newTunnelId();
    this.pendingTunnels.set(req, { id, terms });
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.metrics.bridgeConnections.inc({ result: 'accepted' });
      this.touch();
      this.link.attach(ws, id, terms);
    });
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
    const deadline = this.link.renew(tunnel, expiresAt);
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
