/** What /api/proxy/start, /api/proxy/stop and /api/proxy/status answer about the caller's streaming proxy. */
export interface ProxyStatus {
  status: 'running' | 'starting' | 'stopping' | 'stopped';
  proxyId: string | null;
  /** ISO 8601 times, null while there is no proxy. */
  createdAt: string | null;
  lastActivity: string | null;
  health: { ok: boolean; checkedAt: string; error?: string } | null;
  /** A bridge of this user is connected to the proxy through this server. */
  bridgeConnected: boolean;
  runtime: 'docker' | 'process';
}

/** POST /api/proxy/stop adds whether there was a proxy to stop. */
export interface ProxyStopAnswer extends ProxyStatus {
  stopped: boolean;
}
