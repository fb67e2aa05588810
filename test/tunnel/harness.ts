/**
 * Starts the whole data path in one process for a test: Ollama emulator ⇄ bridge ⇄ streaming
 * proxy, all on loopback, with real sockets and real HTTP/2 in between (on the socket, or inside a
 * WebSocket where a test asks for that transport).
 */
import { randomBytes } from 'node:crypto';
import { Bridge, type BridgeOptions } from '@cloudtolocalllm/bridge';
import type { BridgeState, BridgeStatus } from '@cloudtolocalllm/bridge/supervisor/status';
import { StaticTokenAuthenticator } from '@cloudtolocalllm/server/proxy/auth';
import { StreamingProxy, type StreamingProxyOptions } from '@cloudtolocalllm/server/proxy/streaming-proxy';
import { BRIDGE_PATH } from '@cloudtolocalllm/bridge/connection/protocol';
import { OllamaEmulator, type EmulatorBehaviour } from '@cloudtolocalllm/ollama-emulator';

/** Fast heartbeats and backoff so failure tests finish in seconds, not minutes. */
export const FAST_HEARTBEAT = { intervalMs: 250, timeoutMs: 3_000 };
export const FAST_BACKOFF = { initialMs: 50, maxMs: 300, factor: 2, minMs: 20 };

export interface StackOptions {
  emulator?: Partial<EmulatorBehaviour>;
  bridge?: Partial<BridgeOptions>;
  proxy?: Partial<StreamingProxyOptions>;
  /** Do not start the bridge. */
  noBridge?: boolean;
}

export interface Stack {
  emulator: OllamaEmulator;
  proxy: StreamingProxy;
  /** Base URL of the proxy: what an Ollama client is pointed at. */
  url: string;
  token: string;
  bridge: Bridge;
  /** Headers an authenticated client sends. */
  auth: { authorization: string };
  /** Starts a new bridge against this stack's proxy (the old one, if any, is left alone). */
  newBridge(options?: Partial<BridgeOptions>): Bridge;
  close(): Promise<void>;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const emulator = new OllamaEmulator(options.emulator);
  await emulator.start();
  const token = randomBytes(24).toString('base64url');
  const proxy = new StreamingProxy({
    authenticator: new StaticTokenAuthenticator('test-user', token),
    heartbeat: FAST_HEARTBEAT,
    ...options.proxy,
  });
  const url = await proxy.listen();
  const bridges: Bridge[] = [];
  const newBridge = (extra: Partial<BridgeOptions> = {}): Bridge => {
    const b = new Bridge({
      proxyUrl: url + BRIDGE_PATH,
      getToken: () => token,
      ollamaUrl: emulator.url,
      heartbeat: FAST_HEARTBEAT,
      backoff: FAST_BACKOFF,
      ...options.bridge,
      ...extra,
    });
    bridges.push(b);
    return b;
  };
  const bridge = newBridge();
  if (!options.noBridge) {
    bridge.start();
    await waitForState(bridge, 'connected');
    await waitUntil(() => proxy.links.connected, 'the proxy sees the bridge');
  }
  return {
    emulator,
    proxy,
    url,
    token,
    bridge,
    auth: { authorization: `Bearer ${token}` },
    newBridge,
    async close() {
      await Promise.all(bridges.map((b) => b.stop()));
      await proxy.close();
      await emulator.close();
    },
  };
}

/** Resolves with the bridge's status once it reaches `state` (or is already there). */
export function waitForState(bridge: Bridge, state: BridgeState, timeoutMs = 5_000): Promise<BridgeStatus> {
  if (bridge.status.state === state) return Promise.resolve(bridge.status);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      bridge.off('status', onStatus);
      reject(new Error(`bridge did not reach "${state}" within ${timeoutMs} ms; it is ${JSON.stringify(bridge.status)}`));
    }, timeoutMs);
    function onStatus(s: BridgeStatus): void {
      if (s.state !== state) return;
      clearTimeout(timer);
      bridge.off('status', onStatus);
      resolve(s);
    }
    bridge.on('status', onStatus);
  });
}

export async function waitUntil(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Reads an NDJSON response body as parsed lines, in order. */
export async function readNdjson(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as unknown);
}
