/**
 * Derives the one StatusView the tray and the windows show from the parts' own states:
 * the sign-in session, the streaming proxy's start (ApiClient) and the bridge. Pure, so every combination is testable.
 */
import type { BridgeCounters, BridgeStatus, OllamaHealth } from '@cloudtolocalllm/bridge/supervisor/status';
import type { StatusView, TrayState } from './ipc-contract.js';

export interface StatusParts {
  auth: { state: 'signed-out' | 'signing-in' | 'signed-in'; name?: string; issuer?: string; error?: string };
  proxy: StatusView['proxy'];
  bridge?: BridgeStatus;
  ollama?: OllamaHealth;
  counters?: BridgeCounters;
  keychain: StatusView['keychain'];
  /** Host of the cloud server, or "this computer" for the local stack. */
  cloudHost: string;
  /** Why the server could not be prepared (unreachable, local stack failed): no sign-in happened. */
  setupError?: string;
}

function trayStateOf(p: StatusParts): TrayState {
  if (p.auth.state !== 'signed-in') return p.auth.state === 'signing-in' ? 'connecting' : p.auth.error || p.setupError ? 'error' : 'signed-out';
  if (p.proxy.state === 'error') return 'error';
  const bridge = p.bridge?.state;
  if (bridge === 'connected') return 'connected';
  if (bridge === 'error') return 'error';
  return 'connecting';
}

function statusLineOf(p: StatusParts, tray: TrayState): string {
  if (p.auth.state === 'signing-in') return 'signing in (finish in your browser)';
  if (p.auth.state === 'signed-out') return p.setupError ?? (p.auth.error ? `sign-in failed: ${p.auth.error}` : 'sign in to connect your Ollama');
  if (p.proxy.state === 'provisioning') return `starting your proxy on ${p.cloudHost}`;
  if (p.proxy.state === 'error') return p.proxy.detail ?? 'your proxy could not be started';
  if (tray === 'connected') {
    if (p.ollama?.reachable === false) return `connected to ${p.cloudHost}, but Ollama is not reachable`;
    return `connected to ${p.cloudHost}`;
  }
  const b = p.bridge;
  if (!b || b.state === 'idle' || b.state === 'connecting') return `connecting to ${p.cloudHost}`;
  const retry = b.retryInMs !== undefined ? ` (retrying in ${Math.ceil(b.retryInMs / 1000)} s)` : '';
  return `${b.reason ?? b.state}${retry}`;
}

export function statusView(p: StatusParts): StatusView {
  const trayState = trayStateOf(p);
  const c = p.counters;
  return {
    trayState,
    statusLine: statusLineOf(p, trayState),
    account: {
      signedIn: p.auth.state === 'signed-in',
      ...(p.auth.name ? { name: p.auth.name } : {}),
      ...(p.auth.issuer ? { issuer: p.auth.issuer } : {}),
    },
    bridge: p.bridge
      ? {
          state: p.bridge.state,
          ...(p.bridge.reason ? { reason: p.bridge.reason } : {}),
          ...(p.bridge.connectedSince !== undefined ? { connectedSince: p.bridge.connectedSince } : {}),
          ...(p.bridge.retryInMs !== undefined ? { retryInMs: p.bridge.retryInMs } : {}),
        }
      : { state: 'idle' },
    proxy: p.proxy,
    ollama: { reachable: p.ollama?.reachable, ...(p.ollama?.detail ? { detail: p.ollama.detail } : {}) },
    counters: { requests: c?.requests ?? 0, bytesIn: c?.bytesIn ?? 0, bytesOut: c?.bytesOut ?? 0, activeStreams: c?.activeStreams ?? 0 },
    keychain: p.keychain,
  };
}
