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
  /** The user's computers connected to the proxy now (issue 10); empty while there is no proxy. */
  computers: ComputerStatus[];
}

/** One of the user's computers on their endpoint. */
export interface ComputerStatus {
  /** Its name (the bridge's --name, the desktop's Settings; the host name by default). */
  name: string;
  /** Its models, as the proxy last read them: read only while two or more computers are connected, else empty. */
  models: string[];
  /** ISO 8601. */
  connectedSince: string | null;
  /** Requests relayed to it and not yet finished. */
  inFlight: number;
  /** The address the cloud saw it connect from. */
  address: string | null;
  /** How its tunnel travels: `h2` (HTTP/2 on the socket), or `websocket` where a fallback was needed. */
  transport: 'h2' | 'websocket' | null;
}

/** POST /api/proxy/stop adds whether there was a proxy to stop. */
export interface ProxyStopAnswer extends ProxyStatus {
  stopped: boolean;
}
