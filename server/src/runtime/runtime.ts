/**
 * Where per-user streaming proxies run. The proxy manager decides *when* a user's proxy starts
 * and stops; a runtime decides *how*: a hardened container per user on a real Docker engine
 * (production), or a StreamingProxy inside the server process (machines without Docker).
 */
import type { EventEmitter } from 'node:events';
import type { UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';

/** What a runtime needs to start one user's proxy. */
export interface ProxySpec {
  /** The user's id (JWT `sub`). Runtimes must never put it in names, labels or logs. */
  userId: string;
  /** userHash(userId): the only form of the user id a runtime may expose. */
  userHash: UserHash;
  /**
   * Per-proxy secret minted by the manager. The proxy accepts only requests and bridges that
   * present it as `Authorization: Bearer <secret>`; the API server adds it when routing, so
   * the user's own token never enters the proxy.
   */
  secret: string;
}

/** A proxy a runtime started or found. */
export interface ProxyInstance {
  /** Runtime-specific id: the container name, or `process-<hash prefix>`. */
  id: string;
  userHash: UserHash;
  /** Base URL the API server reaches the proxy on, e.g. `http://10.201.0.2:8080`. */
  endpoint: string;
  /** When it was started (ms since epoch); for a spare, when its user took it (a proxy found at a restart: when its container was made). */
  createdAt: number;
  /**
   * For proxies found at server start (reconciliation): the secret is not recoverable from a
   * runtime that did not keep it, so `secret` is present only when the runtime knows it.
   */
  secret?: string;
  /** The engine's full container id (the Docker runtime): where its cgroup is (cgroup-usage.ts). */
  containerId?: string;
  /** The host's bridge of its network (`ctll-<subnet hex>`): how firewall refusals are told apart by user. */
  bridge?: string;
  /**
   * Where this start's time went, in ms per phase, for a start just made (not for proxies found):
   * the operator's `ctll_proxy_start_phase_seconds` and bench:proxies read it.
   */
  startPhases?: Partial<Record<StartPhase, number>>;
}

/**
 * The phases of a proxy start, in order. firewall: the isolation firewall confirmed; cleanup:
 * leftovers of the user removed; claim: a spare taken from the pool and renamed to the user
 * (when there is one, the start ends here; docker/spare-pool.ts); network: a subnet picked and the user's network created;
 * container: the container created and attached; start: the engine starting it (runc, the
 * namespaces, its end of the network); boot: from there to the proxy's "listening" line and a
 * healthy answer.
 */
export const START_PHASES = ['firewall', 'cleanup', 'claim', 'network', 'container', 'start', 'boot'] as const;
export type StartPhase = (typeof START_PHASES)[number];

export interface ProxyRuntimeEvents {
  /** A proxy ended without being asked to (container died, OOM-killed, removed from outside). */
  exit: [userHash: UserHash, reason: string];
}

export interface ProxyRuntime extends EventEmitter<ProxyRuntimeEvents> {
  readonly kind: 'docker' | 'process';
  /**
   * Starts the user's proxy and resolves once it answers GET /health with 200. Rejects with
   * a message a person understands (e.g. "no free subnet in 10.200.0.0/16").
   * Must not be called twice concurrently for the same user (the manager serialises).
   */
  start(spec: ProxySpec): Promise<ProxyInstance>;
  /** Stops and removes the user's proxy and everything it owns (network). Idempotent. */
  stop(userHash: UserHash): Promise<void>;
  /** Proxies that exist in this runtime now, including ones from before a server restart. */
  list(): Promise<ProxyInstance[]>;
  /** Removes what a crash leaves behind: stopped proxies and networks without a proxy. */
  pruneOrphans(): Promise<{ containers: number; networks: number }>;
  /** Releases the runtime's own resources (event streams, timers); leaves proxies running. */
  close(): Promise<void>;
}
