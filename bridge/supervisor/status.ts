/** What the bridge tells the tray, the settings window and the CLI about itself. */

export type BridgeState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'error' | 'stopped';

export interface BridgeStatus {
  state: BridgeState;
  /** A sentence a person understands: why it is in this state. */
  reason?: string;
  /** Stable code for programs (e.g. `update-required`, `unauthorized`, `replaced`). */
  code?: string;
  /** When this state began (ms since epoch). */
  since: number;
  /** Failed attempts since the last good connection. */
  attempt: number;
  /** When state is disconnected/error and a retry is planned: delay before it. */
  retryInMs?: number;
  /** When the tunnel last connected. */
  connectedSince?: number;
  /**
   * While connected: how the tunnel travels, `h2` (HTTP/2 on the socket) or `websocket` (the
   * fallback where the cloud or a middlebox took nothing else; docs/tunnel.md).
   */
  transport?: 'h2' | 'websocket';
  /** While connected through the cloud server: when the tunnel's credential expires unless renewed. */
  credentialExpiresAt?: number;
  /** When another bridge took the line over (code `replaced`): from where, and when, as the cloud saw it. */
  replacedBy?: { address: string; at: number };
}

export interface OllamaHealth {
  /** undefined until the bridge has tried. */
  reachable: boolean | undefined;
  detail?: string;
  checkedAt?: number;
}

export interface BridgeCounters {
  requests: number;
  refused: number;
  failed: number;
  aborted: number;
  /** Request body bytes received from the cloud. */
  bytesIn: number;
  /** Response body bytes sent to the cloud. */
  bytesOut: number;
  activeStreams: number;
}

export function emptyCounters(): BridgeCounters {
  return { requests: 0, refused: 0, failed: 0, aborted: 0, bytesIn: 0, bytesOut: 0, activeStreams: 0 };
}
