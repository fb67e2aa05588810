/** The cloud server as its own process (`server/src/main.ts`), for tests that kill and restart it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  /** The embedded issuer's URL, from the "listening" log line. */
  issuer: string;
  /** Everything the server wrote to stdout and stderr. */
  log: () => string;
}

/** Starts it on the Docker runtime at `port`; resolves once it logs that it listens. */
export function spawnServer(port: number, env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts', '--runtime', 'docker', '--port', String(port)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
    });
    let log = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
    child.stderr!.setEncoding('utf8');
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log.slice(-2000)}`)), 120_000);
    child.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${log.slice(-2000)}`)));
    child.stderr!.on('data', (d: string) => {
      log += d;
      const m = /"msg":"cloud server listening".*?"issuer":"([^"]+)"/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, issuer: m[1]!, log: () => log });
      }
    });
  });
}
