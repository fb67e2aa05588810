/**
 * Child processes of the benchmark: started in their own process group, their output watched
 * line by line, all of them killed at the end (also on error or Ctrl-C), and their CPU time
 * read from /proc so a run can say which process was busy.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** Last lines of stderr and stdout, for error messages. */
  tail: string[];
  /** Resolves with the first line (stdout or stderr) for which `match` returns a value. */
  waitFor<T>(match: (line: string, stream: 'stdout' | 'stderr') => T | undefined, timeoutMs: number, what: string): Promise<T>;
  exited: Promise<number | null>;
}

const children: Child[] = [];

export function spawnChild(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Child {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const tail: string[] = [];
  const watchers = new Set<(line: string, stream: 'stdout' | 'stderr') => void>();
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      resolve(exitCode);
    }),
  );
  proc.on('error', (e) => tail.push(`spawn error: ${e.message}`));
  for (const stream of ['stdout', 'stderr'] as const) {
    const readable = proc[stream];
    if (!readable) continue;
    createInterface({ input: readable }).on('line', (line) => {
      tail.push(`[${stream}] ${line}`);
      if (tail.length > 40) tail.shift();
      for (const w of watchers) w(line, stream);
    });
  }
  const child: Child = {
    name,
    proc,
    pid: proc.pid,
    tail,
    exited,
    waitFor<T>(match: (line: string, stream: 'stdout' | 'stderr') => T | undefined, timeoutMs: number, what: string): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const fail = (why: string): void => {
          cleanup();
          reject(new Error(`${name}: ${why} while waiting for ${what}\n  ${tail.slice(-15).join('\n  ')}`));
        };
        const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
        const watcher = (line: string, stream: 'stdout' | 'stderr'): void => {
          const value = match(line, stream);
          if (value === undefined) return;
          cleanup();
          resolve(value);
        };
        const onExit = (code: number | null): void => fail(`exited (code ${code})`);
        const cleanup = (): void => {
          clearTimeout(timer);
          watchers.delete(watcher);
          proc.off('exit', onExit);
        };
        if (exitCode !== undefined) {
          fail(`had already exited (code ${exitCode})`);
          return;
        }
        watchers.add(watcher);
        proc.on('exit', onExit);
      });
    },
  };
  children.push(child);
  return child;
}

/** Runs a TypeScript file in a child Node, the way `node --import tsx` runs it in production-like setups. */
export function spawnTs(name: string, file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, nodeFlags: readonly string[] = []): Child {
  return spawnChild(name, process.execPath, [...nodeFlags, '--import', 'tsx', file, ...args], {
    env: { ...process.env, ...env },
  });
}

function signalGroup(child: Child, signal: NodeJS.Signals): void {
  try {
    // Each child leads its own process group (detached): this reaches e.g. sshd's session children.
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.proc.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/** Stops one child: SIGTERM, then SIGKILL after graceMs. */
export async function stopChild(child: Child, graceMs = 2_000): Promise<void> {
  const i = children.indexOf(child);
  if (i >= 0) children.splice(i, 1);
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  signalGroup(child, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** Stops every child still running, newest first. */
export async function stopAll(): Promise<void> {
  const list = [...children].reverse();
  for (const c of list) await stopChild(c);
}

/** Last resort on process exit: synchronous SIGKILL to whatever is left. */
export function killAllSync(): void {
  for (const c of children) signalGroup(c, 'SIGKILL');
  children.length = 0;
}

// ---------- CPU accounting from /proc (Linux); returns NaN elsewhere ----------

const CLOCK_TICKS_PER_SECOND = 100;

function procStat(pid: number): { ppid: number; ticks: number; systemTicks: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return { ppid, ticks: utime + stime, systemTicks: stime };
  } catch {
    return undefined;
  }
}

/** CPU milliseconds used so far by pid and all its living descendants. */
export function cpuMsOfTree(pid: number): number {
  return cpuOfTree(pid).ms;
}

/**
 * How often a process's main thread has gone to sleep so far (`voluntary_ctxt_switches` of
 * /proc/<pid>/status): for an event loop, each is one wait in epoll that ended in a wakeup. NaN
 * if the process is gone.
 */
function sleepsOf(pid: number): number {
  try {
    const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU milliseconds used so far by pid and its living descendants, and how many of them in the
 * kernel (system time: the syscalls, and on loopback and veth the TCP stack of the receiving
 * end too, which runs in the sender's syscall); and their main threads' wakeups so far
 * (sleepsOf). A sleeping process that wakes pays for it beyond its work: on this kind of
 * machine the emulator spends about twice the CPU per request when requests reach it one at a
 * time than when they queue (docs/benchmarks.md, "Wakeups").
 */
export function cpuOfTree(pid: number): { ms: number; kernelMs: number; wakeups: number } {
  let pids: number[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
  } catch {
    return { ms: Number.NaN, kernelMs: Number.NaN, wakeups: Number.NaN };
  }
  const byParent = new Map<number, number[]>();
  const ticks = new Map<number, { all: number; system: number }>();
  for (const p of pids) {
    const s = procStat(p);
    if (!s) continue;
    ticks.set(p, { all: s.ticks, system: s.systemTicks });
    const list = byParent.get(s.ppid) ?? [];
    list.push(p);
    byParent.set(s.ppid, list);
  }
  if (!ticks.has(pid)) return { ms: Number.NaN, kernelMs: Number.NaN, wakeups: Number.NaN };
  let total = 0;
  let system = 0;
  let wakeups = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop() as number;
    total += ticks.get(p)?.all ?? 0;
    system += ticks.get(p)?.system ?? 0;
    // A process that ended meanwhile takes its count with it; the tree's count stays a sum of the living.
    const sleeps = sleepsOf(p);
    if (Number.isFinite(sleeps)) wakeups += sleeps;
    stack.push(...(byParent.get(p) ?? []));
  }
  return { ms: (total * 1000) / CLOCK_TICKS_PER_SECOND, kernelMs: (system * 1000) / CLOCK_TICKS_PER_SECOND, wakeups };
}
