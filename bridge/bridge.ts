/**
 * The bridge: its supervisor (supervisor/) keeps one tunnel to the user's streaming proxy alive,
 * and its forwarder (forward/) serves the tunnel's streams from the local Ollama. Used by the
 * desktop app and by the headless CLI alike.
 *
 * Events: `status` (BridgeStatus), `ollama` (OllamaHealth), `counters` is a getter (poll it).
 */
import { EventEmitter } from 'node:events';
import { DEFAULT_HEARTBEAT, type HeartbeatOptions } from './connection/heartbeat.js';
import { DEFAULT_MACHINE_NAME, machineNameProblem, type TunnelTransport } from './connection/protocol.js';
import { dialTunnel } from './connection/tunnel-dialer.js';
import { OllamaForwarder } from './forward/ollama-forwarder.js';
import { probeOllama, type OllamaProbeResult } from './forward/ollama-probe.js';
import { DEFAULT_OLLAMA_URL, parseOllamaUrl, type OllamaTarget } from './forward/ollama-target.js';
import { DEFAULT_POLICY, type CloudPolicy } from './ingress/policy.js';
import type { KeyRing } from './keys/key-ring.js';
import type { BackoffOptions } from './supervisor/backoff.js';
import { emptyCounters, type BridgeCounters, type BridgeStatus, type OllamaHealth } from './supervisor/status.js';
import { Supervisor } from './supervisor/supervisor.js';

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
  /**
   * This computer's name on the user's endpoint (issue 10; validated by machineNameProblem).
   * Several computers with different names serve one endpoint; the same name replaces.
   */
  name?: string;
  /** Only this tunnel transport (bridge CLI --transport); none: h2, else websocket (tunnel-dialer.ts). */
  transport?: TunnelTransport;
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
  private policyValue: CloudPolicy;
  private readonly forwarder: OllamaForwarder;
  private readonly supervisor: Supervisor;
  private readonly counterValues: BridgeCounters = emptyCounters();
  private ollamaValue: OllamaHealth = { reachable: undefined };

  constructor(options: BridgeOptions) {
    super();
    const proxyUrl = validateProxyUrl(options.proxyUrl);
    const nameProblem = options.name === undefined ? undefined : machineNameProblem(options.name);
    if (nameProblem) throw new Error(nameProblem);
    this.ollama = parseOllamaUrl(options.ollamaUrl ?? DEFAULT_OLLAMA_URL);
    this.policyValue = options.policy ?? DEFAULT_POLICY;
    this.forwarder = new OllamaForwarder({
      target: this.ollama,
      policy: () => this.policyValue,
      ...(options.keys ? { keys: options.keys } : {}),
      machine: options.name ?? DEFAULT_MACHINE_NAME,
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
    this.supervisor = new Supervisor({
      proxyUrl,
      getToken: options.getToken,
      dial: (token) =>
        dialTunnel({
          proxyUrl: proxyUrl.href,
          token,
          heartbeat: options.heartbeat ?? DEFAULT_HEARTBEAT,
          onStream: (stream, headers) => this.forwarder.handle(stream, headers),
          ...(options.protocolVersion !== undefined ? { protocolVersion: options.protocolVersion } : {}),
          ...(options.ca !== undefined ? { ca: options.ca } : {}),
          ...(options.name !== undefined ? { machine: options.name } : {}),
          ...(options.transport !== undefined ? { transport: options.transport } : {}),
        }),
      ...(options.backoff !== undefined ? { backoff: options.backoff } : {}),
      ...(options.stableAfterMs !== undefined ? { stableAfterMs: options.stableAfterMs } : {}),
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
    });
    this.supervisor.on('status', (status) => this.emit('status', status));
  }

  get status(): BridgeStatus {
    return this.supervisor.status;
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
    if (this.supervisor.running) return;
    void this.probeOllama();
    this.supervisor.start();
  }

  /** Stops reconnecting, closes the tunnel (open streams are reset) and resolves when done. */
  async stop(): Promise<void> {
    await this.supervisor.stop(() => this.forwarder.close());
  }

  /** Asks Ollama for its version: the start-up health check. */
  async probeOllama(timeoutMs = 5_000): Promise<OllamaProbeResult> {
    const result = await probeOllama(this.ollama, { timeoutMs });
    this.setOllama(result.ok, result.ok ? `Ollama ${result.version} at ${this.ollama.url.origin}` : result.error);
    return result;
  }

  private setOllama(reachable: boolean, detail: string): void {
    const changed = this.ollamaValue.reachable !== reachable;
    this.ollamaValue = { reachable, detail, checkedAt: Date.now() };
    if (changed) this.emit('ollama', this.ollamaHealth);
  }
}
