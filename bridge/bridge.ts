/**
 * The bridge: keeps one tunnel to the user's cloud proxy alive and serves it from the local
 * Ollama. Used by the desktop app and by the headless CLI alike.
 *
 * Events: `status` (BridgeStatus), `ollama` (OllamaHealth), `counters` is a getter (poll it).
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { DEFAULT_HEARTBEAT, type HeartbeatOptions } from './connection/heartbeat.js';
import { dialTunnel, TunnelError, type TunnelConnection } from './connection/tunnel-dialer.js';
import { renewalDelay, renewTunnel, renewUrl, retryDelay } from './connection/tunnel-renewal.js';
import { OllamaForwarder } from './forward/ollama-forwarder.js';
import { DEFAULT_OLLAMA_URL, parseOllamaUrl, type OllamaTarget } from './forward/ollama-target.js';
import { DEFAULT_POLICY, type CloudPolicy } from './ingress/policy.js';
import type { KeyRing } from './keys/key-ring.js';
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './supervisor/backoff.js';
import { emptyCounters, type BridgeCounters, type BridgeState, type BridgeStatus, type OllamaHealth } from './supervisor/status.js';

export interface BridgeOptions {
  /** ws:// or wss:// URL of the proxy's bridge endpoint. */
  proxyUrl: string;
  /** Current credential for the proxy; called before every connection attempt (tokens expire). */
  getToken: () => string | Promise<string>;
  ollamaUrl?: string;
  policy?: CloudPolicy;
  heartbeat?: HeartbeatOptions;
  backoff?: BackoffOptions;
  /** A connection that lasted this long resets the backoff. */
  stableAfterMs?: number;
  /** Only tests change it. */
  protocolVersion?: number;
  /**
   * Extra CA certificate(s) (PEM) trusted for a wss:// proxy URL, on top of the system's: a cloud
   * with a self-signed or private-CA certificate. Added to Node's default roots, not instead of them.
   */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * Client keys (issue 9): the set the proxy gets over the tunnel, and their scopes and usage.
   * The caller starts and closes it; without it the proxy accepts no key.
   */
  keys?: KeyRing;
}

export interface BridgeEvents {
  status: [BridgeStatus];
  ollama: [OllamaHealth];
}

function validateProxyUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`proxy URL "${raw}" is not a URL; expected ws://host:port/bridge or wss://host/ws/bridge`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new Error(`proxy URL "${raw}" must use ws://, wss://, http:// or https://`);
  return url;
}

export class Bridge extends EventEmitter<BridgeEvents> {
  readonly ollama: OllamaTarget;
  private readonly proxyUrl: URL;
  private policyValue: CloudPolicy;
  private readonly forwarder: OllamaForwarder;
  private readonly backoff: Backoff;
  private readonly counterValues: BridgeCounters = emptyCounters();
  private statusValue: BridgeStatus = { state: 'idle', since: Date.now(), attempt: 0 };
  private ollamaValue: OllamaHealth = { reachable: undefined };
  private connection: TunnelConnection | undefined;
  private running = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: BridgeOptions) {
    super();
    this.proxyUrl = validateProxyUrl(options.proxyUrl);
    this.ollama = parseOllamaUrl(options.ollamaUrl ?? DEFAULT_OLLAMA_URL);
    this.policyValue = options.policy ?? DEFAULT_POLICY;
    this.backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF);
    this.forwarder = new OllamaForwarder({
      target: this.ollama,
      policy: () => this.policyValue,
      ...(options.keys ? { keys: options.keys } : {}),
      events: {
        requestStarted: () => {
          this.counterValues.requests += 1;
          this.counterValues.activeStreams += 1;
        },
        requestFinished: (_route, outcome) => {
          this.counterValues.activeStreams -= 1;
          if (outcome === 'refused') this.counterValues.refused += 1;
          else if (outcome === 'failed') this.counterValues.failed += 1;
          else if (outcome === 'aborted') this.counterValues.aborted += 1;
        },
        bytes: (direction, count) => {
          if (direction === 'in') this.counterValues.bytesIn += count;
          else this.counterValues.bytesOut += count;
        },
        ollamaReachable: (reachable, detail) => this.setOllama(reachable, detail),
      },
    });
  }

  get status(): BridgeStatus {
    return { ...this.statusValue };
  }

  get counters(): BridgeCounters {
    return { ...this.counterValues };
  }

  get ollamaHealth(): OllamaHealth {
    return { ...this.ollamaValue };
  }

  /** Changes what the cloud may ask; applies to the next request, no reconnect needed. */
  setPolicy(policy: CloudPolicy): void {
    this.policyValue = policy;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops reconnecting, closes the tunnel (open streams are reset) and resolves when done. */
  async stop(): Promise<void> {
    this.running = false;
    this.connection?.close('bridge stopped by its user');
    this.wake?.();
    await this.loop;
    this.forwarder.close();
    this.setStatus('stopped', { reason: 'stopped' });
  }

  /** Asks Ollama for its version: the Settings window's "Test" and the start-up probe. */
  async probeOllama(timeoutMs = 5_000): Promise<{ ok: true; version: string } | { ok: false; error: string }> {
    const target = this.ollama;
    const lib = target.protocol === 'https:' ? https : http;
    const result = await new Promise<{ ok: true; version: string } | { ok: false; error: string }>((resolve) => {
      const req = lib.get(
        { hostname: target.hostname, port: target.port, path: '/api/version', headers: { host: target.host }, timeout: timeoutMs },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c.length < 65536 ? c : ''));
          res.on('end', () => {
            if (res.statusCode !== 200) {
              resolve({ ok: false, error: `Ollama at ${target.url.origin} answered HTTP ${res.statusCode}` });
              return;
            }
            try {
              const version = (JSON.parse(body) as { version?: unknown }).version;
              resolve({ ok: true, version: typeof version === 'string' ? version : 'unknown' });
            } catch {
              resolve({ ok: false, error: `${target.url.origin} answered, but not like Ollama does (no version)` });
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) =>
        resolve({ ok: false, error: `Ollama at ${target.url.origin} cannot be reached: ${e.code === 'ECONNREFUSED' ? 'connection refused (is Ollama running?)' : e.message}` }),
      );
    });
    this.setOllama(result.ok, result.ok ? `Ollama ${result.version} at ${target.url.origin}` : result.error);
    return result;
  }

  private setOllama(reachable: boolean, detail: string): void {
    const changed = this.ollamaValue.reachable !== reachable;
    this.ollamaValue = { reachable, detail, checkedAt: Date.now() };
    if (changed) this.emit('ollama', this.ollamaHealth);
  }

  private setStatus(state: BridgeState, extra: Partial<BridgeStatus> = {}): void {
    this.statusValue = {
      state,
      since: Date.now(),
      attempt: this.backoff.attempts,
      ...extra,
    };
    this.emit('status', this.status);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /**
   * Renews the tunnel's credential before it expires, with a fresh token from getToken, for as
   * long as the tunnel is open. A tunnel whose renewal fails ends at its deadline (the proxy
   * closes it with `credential-expired`) and the bridge reconnects with a fresh token then.
   */
  private keepRenewed(connection: TunnelConnection): () => void {
    const tunnel = connection.tunnel;
    const url = renewUrl(this.proxyUrl);
    if (!tunnel?.expiresAt || !url) return () => undefined;
    let expiresAt = tunnel.expiresAt;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const schedule = (ms: number): void => {
      timer = setTimeout(() => void attempt(), ms);
    };
    const attempt = async (): Promise<void> => {
      let result;
      try {
        result = await renewTunnel(url, await this.options.getToken(), tunnel.id, this.options.ca);
      } catch (e) {
        result = { ok: false as const, status: 0, error: e instanceof Error ? e.message : String(e) };
      }
      if (stopped) return;
      if (result.ok && result.expiresAt > expiresAt) {
        expiresAt = result.expiresAt;
        this.statusValue = { ...this.statusValue, credentialExpiresAt: expiresAt };
        this.emit('status', this.status);
        return schedule(renewalDelay(expiresAt));
      }
      // The tunnel is gone (409): its close is on the way. Otherwise try again before the deadline.
      if (!result.ok && result.status === 409) return;
      if (Date.now() < expiresAt) schedule(retryDelay(expiresAt));
    };
    schedule(renewalDelay(expiresAt));
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  private async run(): Promise<void> {
    void this.probeOllama();
    while (this.running) {
      this.setStatus('connecting', { reason: `connecting to ${this.proxyUrl.origin}` });
      let outcome: TunnelError;
      let connectedAt: number | undefined;
      try {
        const token = await this.options.getToken();
        this.connection = await dialTunnel({
          proxyUrl: this.proxyUrl.href,
          token,
          heartbeat: this.options.heartbeat ?? DEFAULT_HEARTBEAT,
          onStream: (stream, headers) => this.forwarder.handle(stream, headers),
          ...(this.options.protocolVersion !== undefined ? { protocolVersion: this.options.protocolVersion } : {}),
          ...(this.options.ca !== undefined ? { ca: this.options.ca } : {}),
        });
        connectedAt = Date.now();
        if (!this.running) {
          this.connection.close('bridge stopped by its user');
          break;
        }
        const expiresAt = this.connection.tunnel?.expiresAt;
        this.setStatus('connected', {
          reason: `connected to ${this.proxyUrl.origin}`,
          connectedSince: connectedAt,
          ...(expiresAt !== undefined ? { credentialExpiresAt: expiresAt } : {}),
        });
        const stopRenewing = this.keepRenewed(this.connection);
        outcome = await this.connection.closed;
        stopRenewing();
      } catch (e) {
        outcome = e instanceof TunnelError ? e : new TunnelError('network', e instanceof Error ? e.message : String(e));
      } finally {
        this.connection = undefined;
      }
      if (!this.running) break;
      if (connectedAt !== undefined && Date.now() - connectedAt >= (this.options.stableAfterMs ?? 10_000)) this.backoff.reset();
      if (outcome.fatal) {
        this.running = false;
        this.setStatus(outcome.code === 'replaced' ? 'disconnected' : 'error', {
          reason: outcome.message,
          code: outcome.code,
          ...(outcome.replacedBy ? { replacedBy: outcome.replacedBy } : {}),
        });
        break;
      }
      const delay = this.backoff.next();
      const state: BridgeState = connectedAt !== undefined ? 'disconnected' : 'error';
      this.setStatus(state, { reason: outcome.message, code: outcome.code, retryInMs: delay });
      await this.sleep(delay);
    }
  }
}
