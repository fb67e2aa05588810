/**
 * Several api-backends as real processes on loopback (`server/src/main.ts`, in-process runtime),
 * each on its own loopback address (127.0.0.2, .3, ...: Linux routes all of 127/8 to lo) so that,
 * as on a Swarm, every member's peer listener has the same port and membership comes from DNS
 * A records (a DNS stub stands in for Swarm's `tasks.<service>`). One embedded issuer, run by the
 * test, signs every user in; each node verifies its tokens as it would Auth0's.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { DEFAULT_AUDIENCE } from '@cloudtolocalllm/server/config';
import { startEmbeddedIssuer, type EmbeddedIssuer } from '@cloudtolocalllm/server/issuer/embedded-issuer';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { startDnsStub, type DnsStub } from './dns-stub.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface NodeProcess {
  /** Its member address, `127.0.0.N:PORT`. */
  member: string;
  /** Its public URL (the api-backend's HTTP listener). */
  url: string;
  child: ChildProcess;
  log: () => string;
  /** Ends the process (SIGTERM, or SIGKILL for a node's loss) and waits for its exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** A port free on every one of `hosts`. */
export async function freePortOn(hosts: string[]): Promise<number> {
  for (;;) {
    const probe = net.createServer();
    probe.listen(0, hosts[0]);
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    probe.close();
    const free = await Promise.all(
      hosts.slice(1).map(
        (host) =>
          new Promise<boolean>((resolve) => {
            const s = net.createServer();
            s.once('error', () => resolve(false));
            s.listen(port, host, () => s.close(() => resolve(true)));
          }),
      ),
    );
    if (free.every(Boolean)) return port;
  }
}

/** A per-stack CA and node certificates made by the deploy script; `dir` is removed by `remove`. */
export function makeClusterCa(names: string[]): { dir: string; file: (name: string) => string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'ctll-cluster-ca-'));
  execFileSync(join(ROOT, 'scripts/deploy/make-cluster-ca.sh'), [dir, ...names], { stdio: 'pipe' });
  return { dir, file: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts one api-backend; resolves once it logs that it listens. */
export function spawnNode(member: string, env: NodeJS.ProcessEnv): Promise<NodeProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts', '--runtime', 'process', '--port', '0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'info', ...env, CTLL_NODE_ADDRESS: member },
    });
    let log = '';
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${member} did not start:\n${log.slice(-2000)}`));
    }, 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node ${member} exited with ${code}:\n${log.slice(-2000)}`));
    });
    const onData = (d: string): void => {
      log += d;
      const m = /"msg":"cloud server listening".*?"url":"([^"]+)"/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ member, url: m[1]!, child, log: () => log, stop });
      }
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', onData);
  });
}

export interface Cluster {
  dns: DnsStub;
  ca: ReturnType<typeof makeClusterCa>;
  issuer: EmbeddedIssuer;
  /** The users' Ollama, shared by every user's bridge. */
  emulator: OllamaEmulator;
  /** The peer port every member listens on. */
  port: number;
  nodes: NodeProcess[];
  node(member: string): NodeProcess;
  /** The member addresses of `hosts`. */
  members(hosts: readonly string[]): string[];
  /** Makes `tasks.<service>` answer these hosts (what Swarm does as tasks come and go). */
  setLive(hosts: readonly string[]): void;
  /** Signs a user in through the embedded issuer's PKCE flow; the access token. */
  signIn(username: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * api-backends on `hosts` (127.0.0.N), members through the DNS stub as `tasks.<service>`, the hop
 * mutual TLS from a CA made by the deploy script, one embedded issuer, the emulator as Ollama.
 */
export async function startCluster(
  hosts: readonly string[],
  /** `members: 'static'`: every node is given the list (CTLL_CLUSTER_MEMBERS), as the Swarm stack's script does, and no DNS. */
  options: { service?: string; intervalMs?: number; env?: NodeJS.ProcessEnv; members?: 'dns' | 'static' } = {},
): Promise<Cluster> {
  const service = options.service ?? 'ctll-api';
  const started: Array<() => Promise<void> | void> = [];
  const close = async (): Promise<void> => {
    for (const stop of started.reverse()) await stop();
  };
  try {
    const dns = await startDnsStub();
    started.push(() => dns.close());
    const ca = makeClusterCa(hosts.map((_, i) => `n${i + 1}`));
    started.push(() => ca.remove());
    const issuer = await startEmbeddedIssuer({ audience: DEFAULT_AUDIENCE });
    started.push(() => issuer.close());
    const emulator = new OllamaEmulator({ tokenIntervalMs: 5 });
    await emulator.start();
    started.push(() => emulator.close());
    const port = await freePortOn([...hosts]);
    dns.set(`tasks.${service}`, [...hosts]);
    const env = (i: number): NodeJS.ProcessEnv => ({
      AUTH0_DOMAIN: issuer.issuer,
      AUTH0_ISSUER: issuer.issuer,
      AUTH0_JWKS_URI: issuer.jwksUri,
      AUTH0_AUDIENCE: DEFAULT_AUDIENCE,
      AUTH0_DESKTOP_CLIENT_ID: issuer.desktopClientId,
      ...(options.members === 'static'
        ? { CTLL_CLUSTER_MEMBERS: hosts.map((h) => `${h}:${port}`).join(',') }
        : { CTLL_CLUSTER_SERVICE: service, CTLL_CLUSTER_DNS_SERVERS: dns.server }),
      CTLL_CLUSTER_PORT: String(port),
      CTLL_CLUSTER_INTERVAL_MS: String(options.intervalMs ?? 200),
      CTLL_CLUSTER_TLS_CA: ca.file('ca.pem'),
      CTLL_CLUSTER_TLS_CERT: ca.file(`n${i + 1}.pem`),
      CTLL_CLUSTER_TLS_KEY: ca.file(`n${i + 1}-key.pem`),
      ...options.env,
    });
    const spawned = await Promise.allSettled(hosts.map((h, i) => spawnNode(`${h}:${port}`, env(i))));
    const nodes = spawned.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    started.push(() => Promise.all(nodes.map((n) => n.stop())).then(() => undefined));
    const failed = spawned.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return {
      dns,
      ca,
      issuer,
      emulator,
      port,
      nodes,
      node: (member) => {
        const n = nodes.find((x) => x.member === member);
        if (!n) throw new Error(`no node ${member}`);
        return n;
      },
      members: (of) => of.map((h) => `${h}:${port}`),
      setLive: (of) => dns.set(`tasks.${service}`, [...of]),
      signIn: async (username) => (await headlessSignIn({ issuer: issuer.issuer, clientId: issuer.desktopClientId, audience: DEFAULT_AUDIENCE, username })).accessToken,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The edge in front of the api-backends (nginx in the stack): a TCP round-robin over the nodes
 * `live()` names, one node per connection, so a bridge whose node died reconnects to another.
 */
export async function startEdge(live: () => readonly NodeProcess[]): Promise<{ url: string; close(): Promise<void> }> {
  let next = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const nodes = live();
    if (nodes.length === 0) return void client.destroy();
    const target = new URL(nodes[next++ % nodes.length]!.url);
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One series of a node's /metrics (`name` or `name{labels}`), 0 when absent. */
export async function metric(n: NodeProcess, series: string): Promise<number> {
  const text = await (await fetch(`${n.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** A short generation for the user of `token` through node `n`; the answer's status. */
export async function generate(n: NodeProcess, token: string): Promise<number> {
  const res = await fetch(`${n.url}/ollama/api/generate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'llama3.2', prompt: 'hello', options: { num_predict: 3 } }),
  });
  await res.arrayBuffer();
  return res.status;
}
