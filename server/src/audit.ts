/**
 * The audit log: one JSON line per proxy lifecycle operation and per authentication failure.
 * It names users only by the SHA-256 of their id and never holds tokens or payloads, so it can
 * be kept and shipped without becoming user data.
 */
export interface AuditEntry {
  action: 'proxy.start' | 'proxy.stop' | 'proxy.adopt' | 'proxy.remove' | 'proxy.exit' | 'proxy.idle' | 'proxy.unhealthy' | 'auth.failure' | 'bridge.connect' | 'bridge.disconnect' | 'bridge.renew';
  result: 'ok' | 'error' | 'refused';
  userHash?: string;
  durationMs?: number;
  /** A short machine-readable reason, e.g. `expired`, `idle`, `oom`. */
  reason?: string;
  /** Where, for auth failures: the route family (`api`, `ollama`, `bridge`; several joined with commas). */
  route?: string;
  /** The client's address (auth failures, bridge connections). */
  address?: string;
  /** The client program, for bridge connections: its User-Agent (bridge name and version). */
  client?: string;
  /** For auth failures: how many in the window, how many of those refused by the limit, by reason. */
  count?: number;
  limited?: number;
  reasons?: Record<string, number>;
  /** For bridge connections: the computer's name on the user's endpoint (issue 10; not secret). */
  machine?: string;
  /** For a replaced bridge: the address of the one that replaced it. */
  replacedBy?: string;
}

export interface AuditLog {
  record(entry: AuditEntry): void;
}

export function createAuditLog(write: (line: string) => void = (line) => process.stderr.write(line + '\n')): AuditLog {
  return {
    record(entry) {
      write(JSON.stringify({ time: new Date().toISOString(), type: 'audit', ...entry }));
    },
  };
}

/** Keeps entries in memory: for tests. */
export class MemoryAuditLog implements AuditLog {
  readonly entries: Array<AuditEntry & { time: string }> = [];
  record(entry: AuditEntry): void {
    this.entries.push({ time: new Date().toISOString(), ...entry });
  }
}
