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
