/**
 * The supervisor: keeps one tunnel to the user's streaming proxy alive (cloudflared's
 * supervisor/). Dials, waits for the tunnel to end, and dials again after a backoff delay, for
 * as long as it runs; a fatal refusal (update required, another bridge took over) stops it.
 * It owns the bridge's status; what the tunnel carries is the dialer's `onStream`, not its business.
 */
import { EventEmitter } from 'node:events';
import { TunnelError, type TunnelConnection } from '../connection/tunnel-dialer.js';
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { keepRenewed } from './credential-renewal.js';
import type { BridgeState, BridgeStatus } from './status.js';

export interface SupervisorOptions {
  /** The proxy's bridge endpoint (ws:// or wss://), for status lines and the renewal URL. */
  proxyUrl: URL;
  /** Current credential for the proxy; called before every connection attempt (tokens expire). */
  getToken: () => string | Promise<string>;
  /** Opens one tunnel with that credential. */
  dial: (token: string) => Promise<TunnelConnection>;
  backoff?: BackoffOptions;
  /** A connection that lasted this long resets the backoff. */
  stableAfterMs?: number;
  /** Extra CA certificate(s) (PEM) for the renewal request to a wss:// proxy. */
  ca?: string | Buffer | Array<string | Buffer>;
}

export const DEFAULT_STABLE_AFTER_MS = 10_000;

export class Supervisor extends EventEmitter<{ status: [BridgeStatus] }> {
  private readonly backoff: Backoff;
  private statusValue: BridgeStatus = { state: 'idle', since: Date.now(), attempt: 0 };
  private connection: TunnelConnection | undefined;
  private isRunning = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF);
  }

  get status(): BridgeStatus {
    return { ...this.statusValue };
  }

  /** Until stopped, or until a fatal refusal ended the loop. */
  get running(): boolean {
    return this.isRunning;
  }

  start(): void {
    if (this.isRunning) return;
    this.isRunning = true;
    this.loop = this.run();
  }

  /**
   * Stops reconnecting, closes the tunnel (open streams are reset) and resolves once the loop
   * has ended; `release` frees what the tunnel's streams used before the status says stopped.
   */
  async stop(release: () => void = () => undefined): Promise<void> {
    this.isRunning = false;
    this.connection?.close('bridge stopped by its user');
    this.wake?.();
    await this.loop;
    release();
    this.setStatus('stopped', { reason: 'stopped' });
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

  private async run(): Promise<void> {
    const { proxyUrl } = this.options;
    while (this.isRunning) {
      this.setStatus('connecting', { reason: `connecting to ${proxyUrl.origin}` });
      let outcome: TunnelError;
      let connectedAt: number | undefined;
      try {
        const token = await this.options.getToken();
        this.connection = await this.options.dial(token);
        connectedAt = Date.now();
        if (!this.isRunning) {
          this.connection.close('bridge stopped by its user');
          break;
        }
        const expiresAt = this.connection.tunnel?.expiresAt;
        this.setStatus('connected', {
          reason: `connected to ${proxyUrl.origin}`,
          connectedSince: connectedAt,
          transport: this.connection.transport,
          ...(expiresAt !== undefined ? { credentialExpiresAt: expiresAt } : {}),
        });
        const stopRenewing = keepRenewed(this.connection, {
          proxyUrl,
          getToken: this.options.getToken,
          ...(this.options.ca !== undefined ? { ca: this.options.ca } : {}),
          renewed: (credentialExpiresAt) => {
            this.statusValue = { ...this.statusValue, credentialExpiresAt };
            this.emit('status', this.status);
          },
        });
        outcome = await this.connection.closed;
        stopRenewing();
      } catch (e) {
        outcome = e instanceof TunnelError ? e : new TunnelError('network', e instanceof Error ? e.message : String(e));
      } finally {
        this.connection = undefined;
      }
      if (!this.isRunning) break;
      if (connectedAt !== undefined && Date.now() - connectedAt >= (this.options.stableAfterMs ?? DEFAULT_STABLE_AFTER_MS)) this.backoff.reset();
      if (outcome.fatal) {
        this.isRunning = false;
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
