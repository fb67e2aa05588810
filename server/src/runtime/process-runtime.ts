/**
 * Proxies inside the server process: for machines without a Docker engine. Each user still
 * gets their own StreamingProxy (own port, own secret, own bridge), but they share the server's
 * process, memory and network: isolation is weaker, and the server says so when it picks this.
 */
import { EventEmitter } from 'node:events';
import { StaticTokenAuthenticator } from '../proxy/auth.js';
import { StreamingProxy } from '../proxy/streaming-proxy.js';
import type { HeartbeatOptions } from '@cloudtolocalllm/bridge/connection/heartbeat';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { ProxyInstance, ProxyRuntime, ProxyRuntimeEvents, ProxySpec } from './runtime.js';

interface Running {
  proxy: StreamingProxy;
  instance: ProxyInstance;
}

export class ProcessRuntime extends EventEmitter<ProxyRuntimeEvents> implements ProxyRuntime {
  readonly kind = 'process' as const;
  private readonly running = new Map<string, Running>();

  constructor(private readonly options: { heartbeat?: HeartbeatOptions; log?: Logger; responseHeadTimeoutMs?: number; maxConcurrentRequests?: number } = {}) {
    super();
  }

  async start(spec: ProxySpec): Promise<ProxyInstance> {
    const existing = this.running.get(spec.userHash);
    if (existing) return existing.instance;
    const proxy = new StreamingProxy({
      authenticator: new StaticTokenAuthenticator(spec.userHash, spec.secret),
      log: (this.options.log ?? silentLogger).child({ proxy: spec.userHash.slice(0, 12) }),
      ...(this.options.heartbeat ? { heartbeat: this.options.heartbeat } : {}),
      ...(this.options.responseHeadTimeoutMs !== undefined ? { responseHeadTimeoutMs: this.options.responseHeadTimeoutMs } : {}),
      ...(this.options.maxConcurrentRequests !== undefined ? { maxConcurrentRequests: this.options.maxConcurrentRequests } : {}),
    });
    const endpoint = await proxy.listen(0, '127.0.0.1');
    const instance: ProxyInstance = {
      id: `process-${spec.userHash.slice(0, 16)}`,
      userHash: spec.userHash,
      endpoint,
      createdAt: Date.now(),
      secret: spec.secret,
    };
    this.running.set(spec.userHash, { proxy, instance });
    return instance;
  }

  async stop(userHash: string): Promise<void> {
    const r = this.running.get(userHash);
    if (!r) return;
    this.running.delete(userHash);
    await r.proxy.close();
  }

  async list(): Promise<ProxyInstance[]> {
    return [...this.running.values()].map((r) => r.instance);
  }

  async pruneOrphans(): Promise<{ containers: number; networks: number }> {
    // Nothing outlives the process, so nothing can be orphaned.
    return { containers: 0, networks: 0 };
  }

  async close(): Promise<void> {
    // Proxies live in this process: closing the runtime ends them.
    await Promise.all([...this.running.keys()].map((h) => this.stop(h)));
  }
}
