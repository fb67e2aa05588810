/** Runs `npm run start:headless` as users do (a child process) and reads its one JSON line. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface HeadlessRun {
  child: ChildProcess;
  endpoint: string;
  token: string;
  stdout: () => string;
  stderr: () => string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts it with `args` (and `env` on top of this process's); resolves once it printed its endpoint. */
export function startHeadless(args: string[], timeoutMs = 60_000, env: NodeJS.ProcessEnv = {}): Promise<HeadlessRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start-headless.ts', '--json', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`start:headless printed no endpoint within ${timeoutMs} ms; stderr:\n${err.slice(-2000)}`));
    }, timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`start:headless exited with ${code} before printing an endpoint; stderr:\n${err.slice(-2000)}`));
    });
    child.stdout!.on('data', (d: string) => {
      out += d;
      const line = out.split('\n')[0];
      if (!out.includes('\n') || !line) return;
      clearTimeout(timer);
      const { endpoint, token } = JSON.parse(line) as { endpoint: string; token: string };
      resolve({
        child,
        endpoint,
        token,
        stdout: () => out,
        stderr: () => err,
        stop: () => {
          child.kill('SIGTERM');
          return exited;
        },
      });
    });
  });
}
