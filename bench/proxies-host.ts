/**
 * Host measurements for the proxy benchmark (Linux only): memory from /proc/meminfo, CPU time
 * and memory of processes from /proc, the per-container processes (containerd shim and the
 * proxy itself), the engine's own view (`docker stats`), cgroup v1/v2 memory as a fallback, and
 * the kernel objects that grow with every user network (iptables rules, links, ARP entries).
 *
 * Nothing here changes the host: it only reads /proc, /sys and the output of read-only commands.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CLOCK_TICKS_PER_SECOND = 100;
const MiB = 1024 * 1024;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** A /proc/meminfo field in bytes (NaN if missing). */
export function meminfo(field: 'MemTotal' | 'MemAvailable' | 'MemFree' | 'Slab' | 'SUnreclaim' | 'Percpu'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(read('/proc/meminfo') ?? '');
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM), NaN if the process is gone. */
export function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(read(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Proportional set size (shared pages split between their users): the fair share of a process. */
export function pssBytes(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(read(`/proc/${pid}/smaps_rollup`) ?? '');
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  /** user + system CPU time, ms */
  cpuMs: number;
  threads: number;
}

/** Every process on the host, from /proc/<pid>/stat. */
export function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const text = read(`/proc/${name}/stat`);
    if (!text) continue;
    const open = text.indexOf('(');
    const close = text.lastIndexOf(')');
    const rest = text.slice(close + 2).split(' ');
    out.push({
      pid: Number(name),
      comm: text.slice(open + 1, close),
      ppid: Number(rest[1]),
      cpuMs: ((Number(rest[11]) + Number(rest[12])) * 1000) / CLOCK_TICKS_PER_SECOND,
      threads: Number(rest[17]),
    });
  }
  return out;
}

/** CPU ms of one process (all its threads), NaN if gone. */
export function cpuMsOf(pid: number): number {
  const text = read(`/proc/${pid}/stat`);
  if (!text) return Number.NaN;
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Whole-host CPU counters from /proc/stat (jiffies): busy = everything but idle and iowait. */
export function hostCpu(): { busy: number; total: number } {
  const line = (read('/proc/stat') ?? '').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** Jiffies of /proc/stat in ms (USER_HZ is 100 on Linux). */
export const JIFFY_MS = 1000 / CLOCK_TICKS_PER_SECOND;

/** Busy share of all cores between two hostCpu() readings, 0..100 (% of the whole machine). */
export function busyPercent(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  const total = b.total - a.total;
  return total > 0 ? ((b.busy - a.busy) / total) * 100 : Number.NaN;
}

export function loadavg(): string {
  return (read('/proc/loadavg') ?? '').split(' ').slice(0, 3).join(' ');
}

export function sysctl(name: string): string {
  return (read(`/proc/sys/${name.replaceAll('.', '/')}`) ?? 'n/a').trim();
}

/** The engine daemons' CPU time and memory. */
export interface DaemonSample {
  dockerdPid?: number;
  containerdPid?: number;
  dockerdCpuMs: number;
  containerdCpuMs: number;
  dockerdRss: number;
  containerdRss: number;
}

/** The pid in a pid file, if that process is alive. */
function pidFromFile(path: string): number | undefined {
  const pid = Number((read(path) ?? '').trim());
  return Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`) ? pid : undefined;
}

/**
 * The engine daemons: the dockerd of /var/run/docker.pid (not any process named dockerd: a second
 * `dockerd` someone starts while the first is busy runs for a moment and exits) and its containerd.
 */
export function daemons(procs: ProcInfo[] = processes()): DaemonSample {
  const dockerdPid = pidFromFile('/var/run/docker.pid') ?? procs.filter((p) => p.comm === 'dockerd').sort((a, b) => a.pid - b.pid)[0]?.pid;
  const containerdPid =
    pidFromFile('/var/run/docker/containerd/containerd.pid') ??
    procs.find((p) => p.comm === 'containerd' && p.ppid === dockerdPid)?.pid ??
    procs.find((p) => p.comm === 'containerd')?.pid;
  const cpu = (pid: number | undefined): number => procs.find((p) => p.pid === pid)?.cpuMs ?? Number.NaN;
  return {
    ...(dockerdPid ? { dockerdPid } : {}),
    ...(containerdPid ? { containerdPid } : {}),
    dockerdCpuMs: cpu(dockerdPid),
    containerdCpuMs: cpu(containerdPid),
    dockerdRss: dockerdPid ? procStatusBytes(dockerdPid, 'VmRSS') : Number.NaN,
    containerdRss: containerdPid ? procStatusBytes(containerdPid, 'VmRSS') : Number.NaN,
  };
}

/**
 * CPU used between two process snapshots by processes *not* in `ours` (other people's work on a
 * shared host), in % of the whole machine; kernel threads are left out. Only processes alive at
 * both snapshots count. Returns the top consumers too, for the report.
 */
export function otherCpu(
  before: ProcInfo[],
  after: ProcInfo[],
  ours: ReadonlySet<number>,
  wallMs: number,
  cores: number,
): { pct: number; top: string[] } {
  const was = new Map(before.map((p) => [p.pid, p]));
  const used: { comm: string; ms: number }[] = [];
  for (const p of after) {
    const b = was.get(p.pid);
    if (!b || ours.has(p.pid) || p.pid === 2 || p.ppid === 2) continue;
    const ms = p.cpuMs - b.cpuMs;
    if (ms > 0) used.push({ comm: p.comm, ms });
  }
  const total = used.reduce((s, u) => s + u.ms, 0);
  const byComm = new Map<string, number>();
  for (const u of used) byComm.set(u.comm, (byComm.get(u.comm) ?? 0) + u.ms);
  const top = [...byComm.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([comm, ms]) => `${comm} ${((ms / wallMs) * 100).toFixed(0)}%`);
  return { pct: wallMs > 0 ? (total / wallMs / cores) * 100 : Number.NaN, top };
}

/** Processes of the benchmark's own side: a process and all its descendants. */
export function treeOf(roots: readonly number[], procs: ProcInfo[]): Set<number> {
  const children = new Map<number, number[]>();
  for (const p of procs) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const out = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const pid = stack.pop() as number;
    if (out.has(pid)) continue;
    out.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** The host processes behind each of the given containers: its containerd shim and the shim's children. */
export interface ContainerProcesses {
  /** Shims whose -id is one of the containers. */
  shims: number[];
  /** Everything below those shims (the proxy's node process, and a health check if one runs). */
  inside: number[];
  /** CPU ms of all of them, and of the shims alone. */
  cpuMs: number;
  shimCpuMs: number;
}

export function containerProcesses(containerIds: ReadonlySet<string>, procs: ProcInfo[] = processes()): ContainerProcesses {
  const shims: number[] = [];
  for (const p of procs) {
    if (!p.comm.startsWith('containerd-shim')) continue;
    const cmd = (read(`/proc/${p.pid}/cmdline`) ?? '').split('\0');
    const i = cmd.indexOf('-id');
    const id = i >= 0 ? cmd[i + 1] : undefined;
    if (id && containerIds.has(id)) shims.push(p.pid);
  }
  const children = new Map<number, ProcInfo[]>();
  for (const p of procs) {
    const list = children.get(p.ppid) ?? [];
    list.push(p);
    children.set(p.ppid, list);
  }
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const inside: number[] = [];
  const stack = [...shims];
  while (stack.length) {
    const pid = stack.pop() as number;
    for (const c of children.get(pid) ?? []) {
      inside.push(c.pid);
      stack.push(c.pid);
    }
  }
  const shimCpuMs = shims.reduce((s, pid) => s + (byPid.get(pid)?.cpuMs ?? 0), 0);
  const cpuMs = shimCpuMs + inside.reduce((s, pid) => s + (byPid.get(pid)?.cpuMs ?? 0), 0);
  return { shims, inside, cpuMs, shimCpuMs };
}

/** Threads on the whole host (each counts against kernel.pid_max / kernel.threads-max). */
export function threadsOnHost(procs: ProcInfo[] = processes()): number {
  return procs.reduce((s, p) => s + (Number.isFinite(p.threads) ? p.threads : 0), 0);
}

/** Memory usage as `docker stats` shows it ("8.844MiB / 512MiB") in MiB. */
export function parseMemUsage(text: string): number {
  const m = /^\s*([\d.]+)\s*([KMGT]?i?B)\b/i.exec(text);
  if (!m) return Number.NaN;
  const value = Number(m[1]);
  const unit = (m[2] ?? 'B').toUpperCase();
  const factor: Record<string, number> = {
    B: 1 / MiB,
    KIB: 1 / 1024,
    KB: 1000 / MiB,
    MIB: 1,
    MB: 1e6 / MiB,
    GIB: 1024,
    GB: 1e9 / MiB,
  };
  return value * (factor[unit] ?? Number.NaN);
}

/**
 * `docker stats --no-stream` over the named containers: the memory each uses (MiB, as the CLI
 * computes it: cgroup usage without the page cache), and how long the CLI needed.
 */
export async function dockerStats(names: ReadonlySet<string>, timeoutMs: number): Promise<{ mib: number[]; ms: number; error?: string }> {
  const began = Date.now();
  try {
    const { stdout } = await run('docker', ['stats', '--no-stream', '--format', '{{.Name}}\t{{.MemUsage}}'], {
      timeout: timeoutMs,
      maxBuffer: 64 * MiB,
    });
    const mib: number[] = [];
    for (const line of stdout.split('\n')) {
      const [name, usage] = line.split('\t');
      if (name && usage && names.has(name.trim())) mib.push(parseMemUsage(usage));
    }
    return { mib: mib.filter(Number.isFinite), ms: Date.now() - began };
  } catch (e) {
    return { mib: [], ms: Date.now() - began, error: e instanceof Error ? e.message.split('\n')[0] ?? e.message : String(e) };
  }
}

/**
 * The same figure read straight from the cgroup (usage minus inactive file pages, which is what
 * the docker CLI subtracts): a cross-check, and the fallback if `docker stats` times out.
 */
export function cgroupMemMiB(containerId: string): number {
  const v1 = `/sys/fs/cgroup/memory/docker/${containerId}`;
  if (existsSync(v1)) {
    const usage = Number(read(`${v1}/memory.usage_in_bytes`));
    const inactive = Number(/^total_inactive_file (\d+)/m.exec(read(`${v1}/memory.stat`) ?? '')?.[1] ?? 0);
    return (usage - inactive) / MiB;
  }
  for (const v2 of [`/sys/fs/cgroup/system.slice/docker-${containerId}.scope`, `/sys/fs/cgroup/docker/${containerId}`]) {
    if (!existsSync(`${v2}/memory.current`)) continue;
    const usage = Number(read(`${v2}/memory.current`));
    const inactive = Number(/^inactive_file (\d+)/m.exec(read(`${v2}/memory.stat`) ?? '')?.[1] ?? 0);
    return (usage - inactive) / MiB;
  }
  return Number.NaN;
}

/** CPU time used inside a container's cgroup (its processes and every `docker exec`, health checks included), ms. */
export function cgroupCpuMs(containerId: string): number {
  const v1 = read(`/sys/fs/cgroup/cpuacct/docker/${containerId}/cpuacct.usage`);
  if (v1 !== undefined) return Number(v1) / 1e6;
  for (const v2 of [`/sys/fs/cgroup/system.slice/docker-${containerId}.scope`, `/sys/fs/cgroup/docker/${containerId}`]) {
    const m = /^usage_usec (\d+)/m.exec(read(`${v2}/cpu.stat`) ?? '');
    if (m) return Number(m[1]) / 1000;
  }
  return Number.NaN;
}

/** Rules in the iptables ruleset (all tables, `-A` lines of iptables-save) and how long listing took. */
export async function iptablesRules(): Promise<{ rules: number; ctllRules: number; ms: number }> {
  const began = Date.now();
  try {
    const { stdout } = await run('iptables-save', [], { timeout: 60_000, maxBuffer: 256 * MiB });
    const lines = stdout.split('\n').filter((l) => l.startsWith('-A '));
    return { rules: lines.length, ctllRules: lines.filter((l) => l.includes('ctll-')).length, ms: Date.now() - began };
  } catch {
    return { rules: Number.NaN, ctllRules: Number.NaN, ms: Date.now() - began };
  }
}

/** Network interfaces on the host (bridges and veth ends: two or more per user network). */
export function linkCount(): { all: number; ctll: number } {
  try {
    const names = readdirSync('/sys/class/net');
    return { all: names.length, ctll: names.filter((n) => n.startsWith('ctll-')).length };
  } catch {
    return { all: Number.NaN, ctll: Number.NaN };
  }
}

/**
 * IPv4 neighbour (ARP) entries of the host's own namespace: one per proxy. The kernel's limit
 * (net.ipv4.neigh.default.gc_thresh3) counts every namespace's entries together, and each proxy's
 * namespace holds one more (its gateway), so the table fills at about gc_thresh3 / 2 proxies.
 */
export function arpEntries(): number {
  const text = read('/proc/net/arp');
  return text === undefined ? Number.NaN : Math.max(0, text.trim().split('\n').length - 1);
}

/** Static facts about the machine, for the report. */
export async function machine(): Promise<Record<string, string>> {
  const cpuinfo = read('/proc/cpuinfo') ?? '';
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const cores = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  const docker = await run('docker', ['version', '--format', '{{.Server.Version}} (API {{.Server.APIVersion}})'], { timeout: 10_000 })
    .then((r) => r.stdout.trim())
    .catch(() => 'unknown');
  const info = await run('docker', ['info', '--format', '{{.Driver}} / cgroup {{.CgroupDriver}} v{{.CgroupVersion}} / runtime {{.DefaultRuntime}}'], { timeout: 10_000 })
    .then((r) => r.stdout.trim())
    .catch(() => 'unknown');
  const iptables = await run('iptables', ['--version'], { timeout: 10_000 })
    .then((r) => r.stdout.trim())
    .catch(() => 'unknown');
  return {
    cpu: `${cores} × ${model}`,
    memory: `${(meminfo('MemTotal') / 1024 ** 3).toFixed(1)} GiB`,
    kernel: (read('/proc/sys/kernel/osrelease') ?? 'unknown').trim(),
    docker,
    'docker storage / cgroup': info,
    iptables,
    node: process.version,
    'kernel.pid_max': sysctl('kernel.pid_max'),
    'neigh gc_thresh3': sysctl('net.ipv4.neigh.default.gc_thresh3'),
    'load average at start': loadavg(),
  };
}
