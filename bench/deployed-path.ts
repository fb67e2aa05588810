/**
 * The deployed path of the tunnel benchmark: a user's request the way it travels in the product
 * without nginx in front (start:headless; the edge path puts nginx in front: bench/edge-nginx.ts),
 *
 *   client → api-backend (JWT check, limits, body gate, routing by the token's user)
 *          → the user's streaming proxy in its Docker container (own network, 0.5 CPU, read-only)
 *          ⇒ WebSocket carrying HTTP/2, spliced through the api-backend's /ws/bridge
 *          ⇒ bridge → emulator
 *
 * The api-backend runs in bench/deployed-server.ts (start:headless's server: Docker runtime, the
 * proxy image built offline when missing or stale, the embedded issuer); the bridge runs
 * `bridge/cli.ts` in a process of its own, as on a user's computer. The proxy's CPU is read from
 * the container's own processes (its init pid, as the host's /proc sees it).
 *
 * Everything Docker makes here carries the stack name CTLL_STACK_NAME=perfbench and the image tag
 * `streaming-proxy:perfbench`; closing stops the bridge, then the server, which removes the
 * container and network (a server killed hard leaves them to the next start's reconciliation).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { spawnTs, stopChild, type Child } from './children.js';

/** Docker objects of this benchmark carry these names, never another worker's. */
export const DEPLOYED_STACK = 'perfbench';
export const DEPLOYED_IMAGE = 'cloudtolocalllm/streaming-proxy:perfbench';

/**
 * The server's per-user limits are policy (a fair share of a shared server), not a cost of the
 * path: raised so the workloads measure the path (1,000+ requests a second, 64 streams, a
 * 100 MiB body at full speed). Everything else is the default.
 */
const UNLIMITED: NodeJS.ProcessEnv = {
  CTLL_RATE_PER_SECOND: '100000',
  CTLL_RATE_BURST: '1000000',
  CTLL_MAX_CONCURRENT_REQUESTS: '1000',
  CTLL_BODY_BYTES_PER_SECOND: '1000000000000',
  CTLL_BODY_BURST_BYTES: '1000000000000',
};

export interface DeployedPath {
  /** Base URL for an Ollama client: the api-backend's /ollama. */
  url: string;
  /** The api-backend itself, and its edge routing port (for nginx in front: bench/edge-nginx.ts). */
  apiUrl: string;
  edgeUrl: string;
  token: string;
  server: Child;
  bridge: Child;
  /** The proxy container's init process as the host sees it: its process tree is the proxy. */
  proxyPid: number;
  /**
   * The edge path's own user: its bridge connects through nginx at `wsUrl` (straight to its
   * proxy, docs/edge-routing.md), which starts that user's proxy container.
   */
  connectEdgeBridge(wsUrl: string): Promise<{ token: string; bridge: Child; proxyPid: number }>;
  close(): Promise<void>;
}

const jsonLine = <T>(line: string, pick: (m: Record<string, unknown>) => T | undefined): T | undefined => {
  try {
    return pick(JSON.parse(line) as Record<string, unknown>);
  } catch {
    return undefined;
  }
};

function docker(args: readonly string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', timeout: 10_000 }).trim();
}

/** The init pid of the stack's one proxy container besides `others` (the pids already known). */
async function proxyContainerPid(others: readonly number[] = []): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ids = docker(['ps', '-q', '--filter', 'label=cloudtolocalllm.type=streaming-proxy', '--filter', `label=cloudtolocalllm.stack=${DEPLOYED_STACK}`]).split('\n').filter(Boolean);
    const pids = ids.map((id) => Number(docker(['inspect', '-f', '{{.State.Pid}}', id]))).filter((p) => p > 0 && !others.includes(p));
    if (pids.length > 1) throw new Error(`stack ${DEPLOYED_STACK} runs ${ids.length} proxy containers, expected ${others.length + 1}`);
    const pid = pids[0] ?? 0;
    if (pid > 0) return pid;
    if (Date.now() > deadline) throw new Error(`no running proxy container of stack ${DEPLOYED_STACK} within 30 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts api-backend and bridge; resolves once the bridge is connected through the user's proxy container. */
export async function startDeployedPath(root: string, emulatorUrl: string, profFlags: (name: string) => string[], bridgeFlags: readonly string[] = []): Promise<DeployedPath> {
  const server = spawnTs(
    'api-backend',
    join(root, 'bench/deployed-server.ts'),
    ['--user', 'bench-deployed', '--edge-user', 'bench-edge'],
    // The edge port on (a free one): the edge path puts nginx in front of this same api-backend.
    { ...UNLIMITED, CTLL_STACK_NAME: DEPLOYED_STACK, CTLL_PROXY_IMAGE: DEPLOYED_IMAGE, CTLL_EDGE_PORT: '0', LOG_LEVEL: 'info' },
    profFlags('api-backend'),
  );
  let bridge: Child | undefined;
  let edgeBridge: Child | undefined;
  const close = async (): Promise<void> => {
    if (edgeBridge) await stopChild(edgeBridge);
    if (bridge) await stopChild(bridge);
    // Its stop removes the container and network: give it the time that takes.
    await stopChild(server, 30_000);
  };
  try {
    // A first start builds the proxy image (seconds from a warm cache, under a minute cold).
    const { url, edgeUrl, token, edgeToken } = await server.waitFor(
      (line, s) =>
        s === 'stdout'
          ? jsonLine(line, (m) => (m['event'] === 'ready' ? { url: String(m['url']), edgeUrl: String(m['edgeUrl']), token: String(m['token']), edgeToken: String(m['edgeToken']) } : undefined))
          : undefined,
      300_000,
      'the api-backend to listen and sign the user in',
    );
    const startBridge = async (name: string, wsUrl: string, bearer: string, through: string): Promise<Child> => {
      const child = spawnTs(
        name,
        join(root, 'bridge/cli.ts'),
        ['--proxy-url', wsUrl, '--ollama-url', emulatorUrl, '--allow', 'blobs', '--json', ...bridgeFlags],
        { CLOUDTOLOCALLLM_TOKEN: bearer },
        profFlags(name),
      );
      await child.waitFor(
        (line, s) => (s === 'stdout' ? jsonLine(line, (m) => (m['event'] === 'status' && m['state'] === 'connected' ? true : undefined)) : undefined),
        60_000,
        `the bridge to connect through ${through}`,
      );
      return child;
    };
    bridge = await startBridge('bridge-deployed', `${url.replace(/^http/, 'ws')}/ws/bridge`, token, 'the api-backend');
    const proxyPid = await proxyContainerPid();
    return {
      url: `${url}/ollama`,
      apiUrl: url,
      edgeUrl,
      token,
      server,
      bridge,
      proxyPid,
      async connectEdgeBridge(wsUrl) {
        edgeBridge = await startBridge('bridge-edge', wsUrl, edgeToken, 'nginx');
        return { token: edgeToken, bridge: edgeBridge, proxyPid: await proxyContainerPid([proxyPid]) };
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
