// A test double of Ollama's HTTP server (node:http only). It answers the endpoints and shapes
// listed in /work/shared/OLLAMA-API.md, enforces Ollama's two 403 checks (Host and Origin), paces
// generated tokens like a model does, and records every exchange so tests can check what a relay
// really delivered: body bytes and digest, tokens sent, whether the caller went away.
//
//   const emu = new OllamaEmulator({ tokenIntervalMs: 20 });
//   const url = await emu.start();            // http://127.0.0.1:<port>
//   ... point the bridge at url ...
//   await emu.waitFor((r) => r.aborted);      // the relay stopped the generation
//   await emu.close();

import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname as osHostname, networkInterfaces } from 'node:os';
import { DEFAULT_BEHAVIOUR, mergeBehaviour, type EmulatorBehaviour } from './behaviour.js';
import { BadRequest, sendEmpty, sendText, writeHead, type Exchange } from './exchange.js';
import { sendNativeError } from './generation.js';
import { classifyHost, hostCheckApplies, type HostPolicy } from './host-check.js';
import { ModelRegistry } from './models.js';
import { sendOpenAIError } from './openai-api.js';
import { allowedOrigins, OriginPolicy } from './origin-check.js';
import { RequestLog, type RecordedRequest } from './recorder.js';
import { matchRoute, type Route } from './routes.js';

export type { EmulatorBehaviour } from './behaviour.js';
export type { RecordedRequest } from './recorder.js';
export { expectedText, tokenText } from './tokens.js';

export interface EmulatorOptions extends Partial<EmulatorBehaviour> {
  /** The machine hostname the Host check accepts (default os.hostname()). */
  hostname?: string;
  /** Extra allowed origins, like OLLAMA_ORIGINS (e.g. "https://app.example.com", "chrome-extension://*"). */
  origins?: string[];
  /** What /api/version reports (default "0.12.6"). */
  version?: string;
}

export interface EmulatorEvents {
  request: [RecordedRequest];
  token: [RecordedRequest];
  finish: [RecordedRequest];
  abort: [RecordedRequest];
}

export const DEFAULT_VERSION = '0.12.6';

function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

interface BodyTracker {
  /** Resolves once the whole body is in; rejects if the caller goes away mid-upload. */
  readonly done: Promise<{ body: Buffer; digest: string }>;
  /** Stops collecting (the request was refused): the rest is still hashed and counted, then dropped. */
  discard(): void;
}

export class OllamaEmulator extends EventEmitter<EmulatorEvents> {
  /** The model store: tests may add or delete models directly (addition to the brief's API). */
  readonly models = new ModelRegistry();
  private current: EmulatorBehaviour;
  private readonly log = new RequestLog();
  private readonly originPolicy: OriginPolicy;
  private readonly hostPolicy: HostPolicy;
  private readonly ollamaVersion: string;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly inFlight = new Set<AbortController>();
  private baseUrl: string | undefined;
  private listenPort: number | undefined;
  private hostCheck = true;
  private generations = 0;
  private closing = false;

  constructor(options: EmulatorOptions = {}) {
    super();
    const { hostname, origins, version, ...behaviour } = options;
    this.current = mergeBehaviour(DEFAULT_BEHAVIOUR, behaviour);
    this.originPolicy = new OriginPolicy(allowedOrigins(origins ?? []));
    this.hostPolicy = { hostname: hostname ?? osHostname(), localAddresses: localAddresses() };
    this.ollamaVersion = version ?? DEFAULT_VERSION;
  }

  /** Listens (default 127.0.0.1 on a free port) and resolves the base URL. Can start again after close(). */
  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    if (this.server) throw new Error(`OllamaEmulator already started at ${this.baseUrl ?? '?'}`);
    // Ollama has no request, header or idle timeouts; Node's defaults would cut long uploads and
    // drop pooled connections that real Ollama keeps.
    const server = createServer({ noDelay: true, requireHostHeader: false, keepAliveTimeout: 0, requestTimeout: 0 }, (req, res) => this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    this.server = server;
    this.closing = false;
    this.hostCheck = hostCheckApplies(address.address);
    this.listenPort = address.port;
    const shown = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
    this.baseUrl = `http://${shown.includes(':') ? `[${shown}]` : shown}:${address.port}`;
    return this.baseUrl;
  }

  /** Base URL such as "http://127.0.0.1:PORT" (still readable after close, to test a dead Ollama). */
  get url(): string {
    if (this.baseUrl === undefined) throw new Error('OllamaEmulator.url: call start() first');
    return this.baseUrl;
  }

  get port(): number {
    if (this.listenPort === undefined) throw new Error('OllamaEmulator.port: call start() first');
    return this.listenPort;
  }

  /** The behaviour new requests get (addition to the brief's API). */
  get behaviour(): Readonly<EmulatorBehaviour> {
    return this.current;
  }

  /** Changes the behaviour of requests that arrive from now on; a response under way keeps its own. */
  set(behaviour: Partial<EmulatorBehaviour>): void {
    this.current = mergeBehaviour(this.current, behaviour);
  }

  /** Every request, in arrival order (live records). */
  get requests(): RecordedRequest[] {
    return this.log.all;
  }

  get aborted(): RecordedRequest[] {
    return this.log.all.filter((r) => r.aborted);
  }

  /** Generations under way (the "GPU busy" count): streaming or not, native or /v1. */
  activeGenerations(): number {
    return this.generations;
  }

  /** Resolves with the first record, past or future, that satisfies predicate; re-checked on every change. */
  waitFor(predicate: (r: RecordedRequest) => boolean, timeoutMs = 5000): Promise<RecordedRequest> {
    return this.log.waitFor(predicate, timeoutMs);
  }

  /** Stops listening, cuts every open connection and generation, fails pending waitFor calls. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.closing = true;
    this.server = undefined;
    for (const controller of this.inFlight) controller.abort();
    this.log.rejectAll('the emulator was closed');
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      for (const socket of this.sockets) socket.destroy();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const record = this.log.open(req);
    const controller = new AbortController();
    this.inFlight.add(controller);
    res.on('finish', () => {
      record.finishedAt = Date.now();
      record.status ??= res.statusCode;
      this.log.changed(record);
      this.emit('finish', record);
    });
    res.on('close', () => {
      this.inFlight.delete(controller);
      if (res.writableFinished) return;
      controller.abort();
      if (this.closing) return;
      record.aborted = true;
      record.abortedAt = Date.now();
      this.log.changed(record);
      this.emit('abort', record);
    });
    this.emit('request', record);
    this.log.changed(record);

    const method = req.method ?? 'GET';
    const target = req.url ?? '/';
    const queryAt = target.indexOf('?');
    const rawPath = queryAt >= 0 ? target.slice(0, queryAt) : target;
    let path = rawPath;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      // Left undecoded: it then matches no route and gets the 404.
    }
    const match = matchRoute(method, path);
    const tracker = this.trackBody(req, record, match.kind === 'route' && match.route.body === 'json');
    const x = this.exchange(req, res, record, controller.signal, tracker, match.kind === 'route' ? match.params : {});

    // Go's net/http refuses an HTTP/1.1 request without Host before Ollama sees it.
    if (req.headers.host === undefined && req.httpVersion === '1.1') {
      tracker.discard();
      writeHead(x, 400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end('400 Bad Request: missing required Host header');
      return;
    }
    // gin redirects a trailing slash before any middleware, so neither check applies to it.
    if (match.kind === 'redirect') {
      tracker.discard();
      const location = rawPath.slice(0, -1) + (queryAt >= 0 ? target.slice(queryAt) : '');
      if (method === 'GET') {
        const html = `<a href="${location}">Moved Permanently</a>.\n\n`;
        writeHead(x, match.status, { Location: location, 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html) });
        res.end(html);
      } else {
        writeHead(x, match.status, { Location: location, 'Content-Length': 0 });
        res.end();
      }
      return;
    }
    // Middleware order as in Ollama: CORS first, then the Host check.
    const host = req.headers.host ?? '';
    const verdict = this.originPolicy.evaluate(req.headers.origin, host, method);
    if (verdict.kind === 'forbidden') {
      tracker.discard();
      sendEmpty(x, 403);
      return;
    }
    if (verdict.kind === 'allowed') {
      for (const [name, value] of Object.entries(verdict.headers)) res.setHeader(name, value);
      if (verdict.preflight) {
        tracker.discard();
        sendEmpty(x, 204);
        return;
      }
    }
    const hostVerdict = this.hostCheck ? classifyHost(host, this.hostPolicy) : 'ip';
    if (hostVerdict === 'forbidden' || (hostVerdict === 'name' && method === 'OPTIONS')) {
      tracker.discard();
      sendEmpty(x, hostVerdict === 'forbidden' ? 403 : 204);
      return;
    }
    if (match.kind === 'none') {
      tracker.discard();
      sendText(x, 404, '404 page not found', 'text/plain');
      return;
    }
    void this.run(match.route, x);
  }

  private async run(route: Route, x: Exchange): Promise<void> {
    try {
      await route.handle(x);
    } catch (error) {
      if (x.signal.aborted) return;
      if (x.res.headersSent) {
        x.res.destroy();
        return;
      }
      const status = error instanceof BadRequest ? error.status : 500;
      const message = error instanceof Error ? error.message : String(error);
      (route.errors === 'openai' ? sendOpenAIError : sendNativeError)(x, status, message);
    }
  }

  /** Hashes and counts every body as it streams; only JSON routes keep the bytes. */
  private trackBody(req: IncomingMessage, record: RecordedRequest, collect: boolean): BodyTracker {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let keep = collect;
    const done = new Promise<{ body: Buffer; digest: string }>((resolve, reject) => {
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        record.bodyBytes += chunk.length;
        if (keep) chunks.push(chunk);
        this.log.changed(record);
      });
      req.once('end', () => {
        const hex = hash.digest('hex');
        record.bodySha256 = hex;
        this.log.changed(record);
        resolve({ body: Buffer.concat(chunks), digest: `sha256:${hex}` });
      });
      req.once('close', () => {
        if (!req.complete) reject(new Error('the caller went away before the request body ended'));
      });
      req.once('error', reject);
    });
    done.catch(() => undefined); // a refused or abandoned request may never look at its body
    return {
      done,
      discard: () => {
        keep = false;
        chunks.length = 0;
      },
    };
  }

  private exchange(req: IncomingMessage, res: ServerResponse, record: RecordedRequest, signal: AbortSignal, tracker: BodyTracker, params: Record<string, string>): Exchange {
    return {
      req,
      res,
      record,
      params,
      behaviour: this.current,
      models: this.models,
      version: this.ollamaVersion,
      signal,
      body: async () => (await tracker.done).body,
      bodyDigest: async () => (await tracker.done).digest,
      noteStatus: (status) => {
        record.status = status;
        this.log.changed(record);
      },
      noteToken: () => {
        record.tokensSent++;
        this.log.changed(record);
        this.emit('token', record);
      },
      // Counted as a change of the record, so waitFor(() => emu.activeGenerations() === 0) works.
      beginGeneration: () => {
        this.generations++;
        this.log.changed(record);
        let ended = false;
        return () => {
          if (ended) return;
          ended = true;
          this.generations--;
          this.log.changed(record);
        };
      },
    };
  }
}
