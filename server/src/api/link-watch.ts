/**
 * The api-backend's side of the proxy's link events (server/src/proxy/link-events.ts): one
 * stream held open to a proxy whose bridges nginx sends straight to it (docs/edge-routing.md),
 * turned into `opened` and `closed` calls, each tunnel once. Only the tunnels nginx sent (marked
 * `edge` by the proxy) count: a tunnel the api-backend splices itself is counted by its splice.
 *
 * A stream that ends, or stays silent past three pings, is opened again while the proxy runs;
 * its first lines (the tunnels open now) then settle what changed meanwhile. Once the proxy is
 * gone, every tunnel still counted is closed.
 */
import http from 'node:http';
import { LINK_EVENTS_PING_MS, PROXY_LINKS_PATH, type LinkEvent, type OpenTunnel } from '../proxy/link-events.js';
import type { ForwardTarget } from './ollama-forward.js';

export interface LinkWatchHandlers {
  opened(tunnel: OpenTunnel): void;
  closed(tunnel: OpenTunnel, replaced: boolean): void;
  /** Asked before each new stream: false once the proxy watched is stopped or replaced. */
  stillRunning(): boolean;
  /** The watch ended because its proxy is gone (after closing what it counted). */
  ended(): void;
}

export interface LinkWatchOptions {
  /** The first wait before a new stream; it doubles while streams fail, up to MAX_RETRY_MS. */
  retryMs?: number;
  silenceMs?: number;
}

/** The longest wait between attempts (a proxy of an older image has no link events: 404). */
const MAX_RETRY_MS = 30_000;

/** Longest line taken from a proxy: an event is a few hundred bytes. */
const MAX_LINE = 16 * 1024;

export class LinkWatch {
  private readonly open = new Map<string, OpenTunnel>();
  private request: http.ClientRequest | undefined;
  private retry: NodeJS.Timeout | undefined;
  private silence: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly retryMs: number;
  private nextRetryMs: number;
  private readonly silenceMs: number;

  constructor(
    readonly target: ForwardTarget,
    private readonly handlers: LinkWatchHandlers,
    options: LinkWatchOptions = {},
  ) {
    this.retryMs = options.retryMs ?? 1_000;
    this.nextRetryMs = this.retryMs;
    this.silenceMs = options.silenceMs ?? 3 * LINK_EVENTS_PING_MS;
    this.connect();
  }

  /** The edge tunnels counted open now. */
  get tunnels(): number {
    return this.open.size;
  }

  /** Stops watching without closing anything (the api-backend is stopping). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    clearTimeout(this.silence);
    this.request?.destroy();
  }

  /** The proxy is gone: its tunnels are closed, once each. */
  end(): void {
    if (this.stopped) return;
    this.stop();
    for (const t of [...this.open.values()]) this.close(t.tunnel, false);
    this.handlers.ended();
  }

  private connect(): void {
    const url = new URL(this.target.endpoint);
    // The tunnels open now, until `ready`: what the stream's gap changed is settled against them.
    let snapshot: Map<string, OpenTunnel> | undefined = new Map();
    let buffered = '';
    const req = http.get(
      { hostname: url.hostname, port: url.port, path: PROXY_LINKS_PATH, headers: { authorization: `Bearer ${this.target.secret}` } },
      (res) => {
        if (res.statusCode !== 200) return void res.resume();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          this.alive();
          buffered += chunk;
          for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            snapshot = this.apply(line, snapshot);
          }
          if (buffered.length > MAX_LINE) req.destroy();
        });
        res.on('error', () => req.destroy());
      },
    );
    this.request = req;
    this.alive();
    req.on('error', () => undefined);
    req.on('close', () => {
      if (this.request === req) this.lost();
    });
  }

  /** One line of the stream; returns the snapshot still being read, if any. */
  private apply(line: string, snapshot: Map<string, OpenTunnel> | undefined): Map<string, OpenTunnel> | undefined {
    let e: LinkEvent;
    try {
      e = JSON.parse(line) as LinkEvent;
    } catch {
      return snapshot;
    }
    if (e.event === 'open') {
      if (!e.edge) return snapshot;
      const tunnel: OpenTunnel = { tunnel: e.tunnel, machine: e.machine, address: e.address, client: e.client, transport: e.transport, edge: true };
      if (snapshot) snapshot.set(tunnel.tunnel, tunnel);
      else if (!this.open.has(tunnel.tunnel)) {
        this.open.set(tunnel.tunnel, tunnel);
        this.handlers.opened(tunnel);
      }
    } else if (e.event === 'close') {
      if (snapshot) snapshot.delete(e.tunnel);
      else this.close(e.tunnel, e.replaced);
    } else if (e.event === 'ready' && snapshot) {
      for (const id of [...this.open.keys()]) if (!snapshot.has(id)) this.close(id, false);
      for (const [id, t] of snapshot) {
        if (this.open.has(id)) continue;
        this.open.set(id, t);
        this.handlers.opened(t);
      }
      this.nextRetryMs = this.retryMs;
      return undefined;
    }
    return snapshot;
  }

  private close(id: string, replaced: boolean): void {
    const t = this.open.get(id);
    if (!t) return;
    this.open.delete(id);
    this.handlers.closed(t, replaced);
  }

  /** A line arrived: the proxy is there. Silence past three pings drops the stream, which is opened again. */
  private alive(): void {
    clearTimeout(this.silence);
    this.silence = setTimeout(() => this.request?.destroy(), this.silenceMs);
    this.silence.unref();
  }

  private lost(): void {
    clearTimeout(this.silence);
    if (this.stopped) return;
    if (!this.handlers.stillRunning()) return this.end();
    this.retry = setTimeout(() => this.connect(), this.nextRetryMs);
    this.nextRetryMs = Math.min(this.nextRetryMs * 2, MAX_RETRY_MS);
    this.retry.unref();
  }
}
