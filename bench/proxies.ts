/**
 * Proxy provisioning benchmark: how fast the cloud server starts a user's streaming proxy on a
 * real Docker engine, how much an idle proxy costs, and how many this host holds.
 *
 * The path measured is the one a user takes: the cloud server runs as a child process the way
 * production runs it (`node --import tsx server/src/main.ts --runtime docker`), users sign in
 * through its embedded issuer's real PKCE flow (headlessSignIn), and each start is a
 * `POST /api/proxy/start` with the user's access token, answered once the proxy is healthy.
 *
 * Steps (cumulative: each one adds users on top of the proxies already running):
 *   10, 100, then growth towards 1,000 (250, 500, 750, 1000). In each step:
 *     cold     the new users' first start (8 in parallel by default: a burst, so queueing counts)
 *     idle     ~10 s with nothing happening, then memory and host counters
 *     warm     POST start for every user whose proxy runs (the idempotent path)
 *     restart  stop then start again, one user at a time, for a sample (a lone start at this scale)
 *   Growth stops at the first failed start, when the host's MemAvailable or thread headroom
 *   runs low, or when a step exceeds its time budget; the report says where and why.
 *
 * A benchmark reports; it never fails the build. Every proxy it started is stopped at the end
 * (also on error or Ctrl-C), and the engine is checked for leftovers.
 *
 *   npm run bench:proxies [-- --steps 10,100,250,500,750,1000] [--concurrency 8] [--idle-seconds 10]
 *                           [--restart-sample 10] [--budget-minutes 25] [--step-budget-seconds 480]
 *                           [--min-free-mib 3072] [--quick] [--tune-kernel] [--spares N] [--json FILE]
 *
 * --spares N sets the server's CTLL_PROXY_SPARES (proxies started ahead of their users; its default
 * otherwise): with spares a start takes one, so "cold" and "restart" measure a claim for as long
 * as the pool keeps up, and a whole start after that.
 *
 * --tune-kernel raises the kernel settings that cap the number of proxies to what the deploy
 * script sets on a server (RECOMMENDED_SYSCTLS in server/src/runtime/docker/host-limits.ts) for
 * the run, and puts the old values back at the end. Without it the host's own values apply.
 */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { DockerRuntime } from '@cloudtolocalllm/server/runtime/docker/docker-runtime';
import { networkCreateOptions } from '@cloudtolocalllm/proxy-spec/container-spec';
import { formatCidr } from '@cloudtolocalllm/proxy-spec/cidr';
import { findFreeSubnet, subnetPlan, subnetsInUse } from '@cloudtolocalllm/server/runtime/docker/subnet-allocator';
import { LABEL_STACK, NETWORK_LABEL_FILTER, PROXY_LABEL_FILTER, ownerOf, ownerOfName } from '@cloudtolocalllm/proxy-spec/naming';
import { RECOMMENDED_SYSCTLS, sysctlPath } from '@cloudtolocalllm/server/runtime/docker/host-limits';
import { DEFAULT_AUDIENCE, loadConfig } from '@cloudtolocalllm/server/config';
import { START_PHASES, type StartPhase } from '@cloudtolocalllm/server/runtime/runtime';
import { killAllSync, spawnChild, stopChild, type Child } from './children.js';
import { fmt, max, quantile, table } from './stats.js';
import {
  call,
  ensureSignedIn,
  getText,
  makeUser,
  metricValue,
  pool,
  shortError,
  type ApiResult,
  type BenchUser,
  type Issuer,
} from './proxies-api.js';
import {
  arpEntries,
  cgroupCpuMs,
  cgroupMemMiB,
  JIFFY_MS,
  containerProcesses,
  cpuMsOf,
  daemons,
  dockerStats,
  hostCpu,
  iptablesRules,
  linkCount,
  loadavg,
  otherCpu,
  treeOf,
  type ProcInfo,
  machine,
  meminfo,
  processes,
  procStatusBytes,
  pssBytes,
  sysctl,
  threadsOnHost,
} from './proxies-host.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE = process.env['CTLL_PROXY_IMAGE'] ?? 'cloudtolocalllm/streaming-proxy:local';
const MiB = 1024 * 1024;
const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '10,100,250,500,750,1000' },
    concurrency: { type: 'string', default: '8' },
    'idle-seconds': { type: 'string', default: '10' },
    'restart-sample': { type: 'string', default: '10' },
    'budget-minutes': { type: 'string', default: '25' },
    'step-budget-seconds': { type: 'string', default: '480' },
    'min-free-mib': { type: 'string', default: '3072' },
    quick: { type: 'boolean', default: false },
    'tune-kernel': { type: 'boolean', default: false },
    spares: { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (args.help) {
  process.stdout.write(
    'usage: npm run bench:proxies [-- --steps 10,100,250,500,1000] [--concurrency 8] [--idle-seconds 10]\n' +
      '                             [--restart-sample 10] [--budget-minutes 25] [--step-budget-seconds 480]\n' +
      '                             [--min-free-mib 3072] [--quick] [--tune-kernel] [--spares N] [--json FILE]\n',
  );
  process.exit(0);
}
const STEPS = (args.quick ? '10,100' : args.steps)
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n > 0)
  .sort((a, b) => a - b);
const CONCURRENCY = Math.max(1, Number(args.concurrency) || 8);
const IDLE_MS = Math.max(0, Number(args['idle-seconds']) || 0) * 1000;
const RESTART_SAMPLE = Math.max(0, Number(args['restart-sample']) || 0);
/** The spares the server keeps: --spares, else its default. */
const SPARES = args.spares !== undefined ? Number(args.spares) : loadConfig({}, []).proxySpares;
const BUDGET_MS = Math.max(1, Number(args['budget-minutes']) || 25) * 60_000;
const STEP_BUDGET_MS = Math.max(10, Number(args['step-budget-seconds']) || 480) * 1000;
const MIN_FREE_BYTES = Math.max(0, Number(args['min-free-mib']) || 0) * MiB;
/** Stop growing before the host's threads come near kernel.pid_max (fork() fails for everyone there). */
const THREAD_HEADROOM = 0.85;
/**
 * Time kept back at the end of the budget for stopping every proxy and checking the engine: it
 * grows with the proxies running (a saturated host stopped 500 in ~270 s, 8 at a time).
 */
const TEARDOWN_MS_PER_PROXY = 650;
const teardownReserveMs = (running: number): number => 60_000 + running * TEARDOWN_MS_PER_PROXY;
/** The restart sample runs one at a time (a lone user's start at this scale), for at most this long. */
const RESTART_PHASE_MS = 90_000;

// Targets: the original design's claims and ours.
const TARGETS = {
  original: { provisionMs: 5000, memoryMiB: 50, users: 1000 },
  ours: { provisionP95Ms: 1000, idleMemoryMiB: 20, users: 1000 },
};

const RUN = randomBytes(3).toString('hex');
/** This run's own stack (naming.ts): no other server on the engine adopts or prunes its proxies, nor it theirs. */
const STACK = `bench-${RUN}`;
const benchStarted = Date.now();
const elapsed = (): string => `${((Date.now() - benchStarted) / 1000).toFixed(0).padStart(4)} s`;
const progress = (line: string): void => {
  process.stderr.write(`[bench:proxies ${elapsed()}] ${line}\n`);
};
const out = (line = ''): void => {
  process.stdout.write(line + '\n');
};

// ---------------------------------------------------------------------------------------------
// State (module level so the signal handlers and the cleanup see it)

let interrupted = 0;
let server: { child: Child; url: string; issuer: Issuer } | undefined;
let runtime: DockerRuntime | undefined;
const users: BenchUser[] = [];
const serverLog = { warnings: 0, errors: 0, lastErrors: [] as string[], adopted: 'n/a' };

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupted += 1;
    if (interrupted === 1) progress(`${signal}: no new starts; stopping every proxy this run started (again to skip the API and remove them through the engine)`);
    else if (interrupted === 2) progress(`${signal} again: removing this run's proxies through the engine directly`);
    else {
      progress(`${signal} a third time: exiting now; leftovers may remain (docker ps -a --filter label=${PROXY_LABEL_FILTER})`);
      killAllSync();
      process.exit(130);
    }
  });
}
process.on('exit', killAllSync);

// ---------------------------------------------------------------------------------------------
// Results

interface Samples {
  cold: number[];
  warm: number[];
  restart: number[];
  /** Restarts made once the server's spares were back (a lone start at rest), and how long that took to come. */
  rested: number[];
  restWaitMs: number[];
  stop: number[];
  signIn: number[];
}

interface StepResult {
  target: number;
  /** Our proxies running at the measurement (docker's view). */
  running: number;
  /** Proxies of this run that vanished without us stopping them (died, or removed by another process). */
  lost: number;
  /** Of those, started again before measuring (not counted as cold starts). */
  reprovisioned: number;
  samples: Samples;
  /** Mean ms per start phase and the starts that had it, over each restart sample (ctll_proxy_start_phase_seconds). */
  restartPhases: Record<'back to back' | 'at rest', Partial<Record<StartPhase, { ms: number; n: number }>>>;
  /** Warm calls that answered 201 (the proxy was not running any more). */
  warmNotRunning: number;
  coldWallMs: number;
  startsPerSecond: number;
  dockerdCpuMsPerStart: number;
  containerdCpuMsPerStart: number;
  serverCpuMsPerStart: number;
  /** Host busy % (whole machine) during the cold starts and during the idle window. */
  coldHostBusyPct: number;
  idleHostBusyPct: number;
  /** CPU of processes that are not this benchmark's (other work on a shared host), % of the machine. */
  coldOtherCpuPct: number;
  idleOtherCpuPct: number;
  otherTop: string[];
  loadavg: string;
  /** Proxy containers on the engine that are not this run's (another cloud server or test). */
  foreignProxies: number;
  /** CPU of dockerd, and of all shims + proxies (incl. engine health checks), in % of one core, while idle. */
  idleDockerdPctOfCore: number;
  idleContainerdPctOfCore: number;
  idleContainersPctOfCore: number;
  /** Of that: the proxies' own node processes, and everything else in their cgroups (the engine's health-check runs). */
  idleProxyProcsPctOfCore: number;
  idleHealthcheckPctOfCore: number;
  dockerStatsMiB: number[];
  dockerStatsMs: number;
  dockerStatsError?: string;
  cgroupMiB: number[];
  memAvailableMiB: number;
  hostDeltaPerProxyMiB: number;
  /** (MemAvailable at the previous step − now) / proxies added since. */
  hostMarginalPerProxyMiB: number;
  shimCount: number;
  shimPssMiB: number;
  shimRssMiB: number;
  proxyProcPssMiB: number;
  serverRssMiB: number;
  dockerdRssMiB: number;
  containerdRssMiB: number;
  iptablesRules: number;
  iptablesCtllRules: number;
  iptablesSaveMs: number;
  netCreateMs: number;
  netRemoveMs: number;
  listNetworksMs: number;
  listContainersMs: number;
  links: number;
  arp: number;
  threads: number;
  health: { healthy: number; unhealthy: number; starting: number; none: number };
  serverRunningGauge: number;
  serverStopsUnhealthy: number;
  serverStopsExited: number;
  metricsScrapeMs: number;
  metricsScrapeSteadyMs: number;
  metricsScrapeProxies: number;
  stepWallMs: number;
}

const steps: StepResult[] = [];
let stopReason: string | undefined;
let machineInfo: Record<string, string> = {};
let baseline = { memAvailable: Number.NaN, serverRss: Number.NaN, iptables: Number.NaN, threads: Number.NaN, foreignContainers: 0 };
let teardown: { stops: number[]; wallMs: number; leftovers: string; memAvailableMiB: number; pruned?: string } | undefined;

// ---------------------------------------------------------------------------------------------
// The cloud server, as a child process

async function startServer(): Promise<{ child: Child; url: string; issuer: Issuer }> {
  const child = spawnChild('cloud-server', process.execPath, ['--import', 'tsx', join(ROOT, 'server/src/main.ts'), '--runtime', 'docker', '--port', '0'], {
    cwd: ROOT,
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      // The run is longer than the default 10 min idle timeout; a benchmark user's proxy must
      // not be destroyed for being idle while the next step is being provisioned.
      CTLL_IDLE_TIMEOUT_MS: '86400000',
      // Leave proxies the server did not start (another process's, adopted at reconcile) alone
      // at exit; this run stops its own users' proxies through the API itself.
      CTLL_KEEP_PROXIES_ON_EXIT: '1',
      CTLL_STACK_NAME: STACK,
      // The server refuses starts past CTLL_MAX_PROXIES (500 by default, what a stock kernel's
      // neighbour table holds); the run measures up to its last step, so that is its ceiling.
      CTLL_MAX_PROXIES: String(Math.max(...STEPS)),
      // Proxies started ahead of their users: the server's default unless --spares says otherwise.
      ...(args.spares !== undefined ? { CTLL_PROXY_SPARES: args.spares } : {}),
    },
  });
  // Count the server's warnings and errors and keep the last few (the child keeps only a short tail).
  const stderr = child.proc.stderr;
  if (stderr) {
    createInterface({ input: stderr }).on('line', (line) => {
      try {
        const m = JSON.parse(line) as { level?: string; msg?: string; error?: string; adopted?: number; removed?: number; containers?: number; networks?: number };
        if (m.msg === 'reconciled with the runtime') {
          serverLog.adopted = `adopted ${m.adopted}, removed ${m.removed}, pruned ${m.containers} containers / ${m.networks} networks`;
        }
        if (m.level === 'warn') serverLog.warnings += 1;
        if (m.level === 'error') {
          serverLog.errors += 1;
          serverLog.lastErrors.push(`${m.msg}${m.error ? `: ${m.error}` : ''}`.slice(0, 400));
          if (serverLog.lastErrors.length > 5) serverLog.lastErrors.shift();
        }
      } catch {
        // not a log line
      }
    });
  }
  const listening = await child.waitFor(
    (line) => {
      try {
        const m = JSON.parse(line) as { msg?: string; url?: string; issuer?: string };
        return m.msg === 'cloud server listening' && m.url && m.issuer ? { url: m.url, issuer: m.issuer } : undefined;
      } catch {
        return undefined;
      }
    },
    180_000,
    'the cloud server to listen',
  );
  return {
    child,
    url: listening.url,
    issuer: { issuer: listening.issuer, clientId: 'cloudtolocalllm-desktop', audience: process.env['CTLL_API_AUDIENCE']?.trim() || DEFAULT_AUDIENCE },
  };
}

function serverAlive(): boolean {
  return !!server && server.child.proc.exitCode === null && server.child.proc.signalCode === null;
}

function serverRss(): number {
  return server ? procStatusBytes(server.child.pid, 'VmRSS') : Number.NaN;
}

// ---------------------------------------------------------------------------------------------
// Engine probes

/** Containers of this run (by name), with their health as `docker ps` shows it; and how long listing took. */
async function ourContainers(): Promise<{ running: Map<string, string>; all: number; foreign: number; health: StepResult['health']; ms: number }> {
  const rt = runtime!;
  const names = new Map(users.map((u) => [u.container, u]));
  const began = performance.now();
  const list = await rt.docker.listContainers({ all: true, filters: { label: [PROXY_LABEL_FILTER] } });
  const ms = performance.now() - began;
  const running = new Map<string, string>();
  const health = { healthy: 0, unhealthy: 0, starting: 0, none: 0 };
  let all = 0;
  let foreign = 0;
  for (const c of list) {
    const name = (c.Names[0] ?? '').replace(/^\//, '');
    if (!names.has(name)) {
      foreign += 1;
      continue;
    }
    all += 1;
    if (c.State !== 'running') continue;
    running.set(c.Id, name);
    if (/\(healthy\)/.test(c.Status)) health.healthy += 1;
    else if (/\(unhealthy\)/.test(c.Status)) health.unhealthy += 1;
    else if (/health: starting/.test(c.Status)) health.starting += 1;
    else health.none += 1;
  }
  return { running, all, foreign, health, ms };
}

/**
 * Creates and removes a user-like network (internal bridge, same options as a user's) in a
 * range of its own, three times: how long the engine takes now, with everything already there.
 */
async function probeNetworkCreate(): Promise<{ listMs: number; createMs: number; removeMs: number }> {
  const rt = runtime!;
  const lists: number[] = [];
  const creates: number[] = [];
  const removes: number[] = [];
  const plan = subnetPlan('10.201.0.0/16', 28);
  for (let i = 0; i < 3; i++) {
    let began = performance.now();
    const used = await subnetsInUse(rt.docker);
    lists.push(performance.now() - began);
    const free = findFreeSubnet(plan, used);
    if (!free) break;
    const subnet = formatCidr(free);
    const name = `ctll-bench-probe-${RUN}`;
    const fakeOwner = 'f'.repeat(64);
    // Same options as a user's network (its bridge is ctll-<subnet hex>), our own name and label.
    const options = { ...networkCreateOptions(fakeOwner, subnet), Name: name, Labels: { 'cloudtolocalllm.bench': RUN } };
    began = performance.now();
    try {
      const net = await rt.docker.createNetwork(options);
      creates.push(performance.now() - began);
      began = performance.now();
      await net.remove();
      removes.push(performance.now() - began);
    } catch (e) {
      progress(`network probe failed: ${e instanceof Error ? e.message : String(e)}`);
      await rt.docker.getNetwork(name).remove().catch(() => undefined);
      break;
    }
  }
  return { listMs: quantile(lists, 0.5), createMs: quantile(creates, 0.5), removeMs: quantile(removes, 0.5) };
}

interface ServerFigures {
  running: number;
  unhealthy: number;
  exited: number;
  /** GET /metrics after the idle wait: every proxy's cgroup files read and the firewall counters synced. */
  scrapeMs: number;
  /** Again 2.1 s later (past the sampler's cache): the steady cost of one Prometheus scrape. */
  scrapeSteadyMs: number;
  /** Proxies the scrape had resource figures for (ctll_proxy_memory_bytes count). */
  scrapeProxies: number;
}

async function serverMetrics(): Promise<ServerFigures> {
  const none = { running: Number.NaN, unhealthy: Number.NaN, exited: Number.NaN, scrapeMs: Number.NaN, scrapeSteadyMs: Number.NaN, scrapeProxies: Number.NaN };
  if (!server || !serverAlive()) return none;
  try {
    let began = performance.now();
    const text = await getText(server.url, '/metrics');
    const scrapeMs = performance.now() - began;
    await sleep(2_100);
    began = performance.now();
    await getText(server.url, '/metrics');
    const scrapeSteadyMs = performance.now() - began;
    // A labelled counter with no observation has no sample at all: that is 0.
    const zero = (v: number): number => (Number.isNaN(v) ? 0 : v);
    return {
      running: zero(metricValue(text, 'ctll_proxies_running')),
      unhealthy: zero(metricValue(text, 'ctll_proxy_stops_total', 'reason="replaced"')),
      exited: zero(metricValue(text, 'ctll_proxy_stops_total', 'reason="died"')),
      scrapeMs,
      scrapeSteadyMs,
      scrapeProxies: zero(metricValue(text, 'ctll_proxy_memory_bytes', 'stat="count"')),
    };
  } catch {
    return none;
  }
}

/** Sum (s) and count of ctll_proxy_start_phase_seconds per phase, as the server counts now. */
async function startPhaseTotals(): Promise<Map<StartPhase, { sum: number; count: number }>> {
  const totals = new Map<StartPhase, { sum: number; count: number }>();
  if (!server || !serverAlive()) return totals;
  const text = await getText(server.url, '/metrics').catch(() => '');
  for (const phase of START_PHASES) {
    const label = `phase="${phase}"`;
    totals.set(phase, {
      sum: metricValue(text, 'ctll_proxy_start_phase_seconds_sum', label),
      count: metricValue(text, 'ctll_proxy_start_phase_seconds_count', label),
    });
  }
  return totals;
}

/** Mean ms per phase, and how many starts had that phase, between two readings of startPhaseTotals. */
function phaseMeans(
  before: Map<StartPhase, { sum: number; count: number }>,
  after: Map<StartPhase, { sum: number; count: number }>,
): Partial<Record<StartPhase, { ms: number; n: number }>> {
  const out: Partial<Record<StartPhase, { ms: number; n: number }>> = {};
  const or0 = (v: number | undefined): number => (v === undefined || Number.isNaN(v) ? 0 : v);
  for (const [phase, a] of after) {
    const b = before.get(phase);
    const n = or0(a.count) - or0(b?.count);
    const sum = or0(a.sum) - or0(b?.sum);
    if (n > 0) out[phase] = { ms: (sum / n) * 1000, n };
  }
  return out;
}

/** Waits until the server's spares are all back (ctll_proxy_spares), at most until `deadline`; the ms waited. */
async function sparesBack(deadline: number): Promise<number> {
  const began = performance.now();
  while (SPARES > 0 && Date.now() < deadline && server && serverAlive()) {
    const text = await getText(server.url, '/metrics').catch(() => '');
    if (metricValue(text, 'ctll_proxy_spares') >= SPARES) break;
    // A scrape reads every proxy's cgroup files (about 0.1 s of the server at 1,000 proxies):
    // polled at a pace that leaves the server mostly to the spare it is making.
    await sleep(250);
  }
  return performance.now() - began;
}

async function memAvailableAveraged(samples = 3): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    values.push(meminfo('MemAvailable'));
    if (i < samples - 1) await sleep(500);
  }
  return values.reduce((a, b) => a + b, 0) / values.length;
}

// ---------------------------------------------------------------------------------------------
// One step

function guardReason(): string | undefined {
  if (interrupted) return 'interrupted (Ctrl-C)';
  if (!serverAlive()) return `the cloud server exited (code ${server?.child.proc.exitCode ?? server?.child.proc.signalCode}); its last output:\n  ${server?.child.tail.slice(-10).join('\n  ')}`;
  const avail = meminfo('MemAvailable');
  if (avail < MIN_FREE_BYTES) {
    return `host memory guard: MemAvailable ${fmt(avail / MiB)} MiB fell below --min-free-mib ${fmt(MIN_FREE_BYTES / MiB)}`;
  }
  return undefined;
}

let threadCheckCounter = 0;
function threadGuardReason(): string | undefined {
  if (++threadCheckCounter % 10 !== 0) return undefined;
  const pidMax = Number(sysctl('kernel.pid_max'));
  const threads = threadsOnHost();
  if (Number.isFinite(pidMax) && threads > pidMax * THREAD_HEADROOM) {
    return `thread guard: ${threads} threads on the host, over ${THREAD_HEADROOM * 100}% of kernel.pid_max ${pidMax} (fork() would start failing for every process)`;
  }
  return undefined;
}

/** Pids that are this benchmark's side: the bench, the server, the engine daemons, our containers' processes. */
function ourPids(procs: ProcInfo[], containerIds: ReadonlySet<string>): Set<number> {
  const d = daemons(procs);
  const roots = [process.pid, ...(server ? [server.child.pid] : []), ...(d.dockerdPid ? [d.dockerdPid] : []), ...(d.containerdPid ? [d.containerdPid] : [])];
  const mine = treeOf(roots, procs);
  const c = containerProcesses(containerIds, procs);
  for (const pid of [...c.shims, ...c.inside]) mine.add(pid);
  return mine;
}

/** A CPU reading: the host's counters, and the CPU this benchmark's side has used so far. */
interface CpuMark {
  at: number;
  host: { busy: number; total: number };
  procs: ProcInfo[];
  /** ms: bench, server, dockerd, containerd and their children, our shims, and our containers' cgroups (health checks included). */
  ours: number;
}

async function cpuMark(): Promise<CpuMark> {
  const containers = await ourContainers();
  const ids = new Set(containers.running.keys());
  const procs = processes();
  const host = hostCpu();
  const d = daemons(procs);
  const roots = [process.pid, ...(server ? [server.child.pid] : []), ...(d.dockerdPid ? [d.dockerdPid] : []), ...(d.containerdPid ? [d.containerdPid] : [])];
  const tree = treeOf(roots, procs);
  const c = containerProcesses(ids, procs);
  for (const pid of c.shims) tree.add(pid);
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  let ours = 0;
  for (const pid of tree) ours += byPid.get(pid)?.cpuMs ?? 0;
  for (const id of ids) {
    const ms = cgroupCpuMs(id);
    if (Number.isFinite(ms)) ours += ms;
  }
  return { at: performance.now(), host, procs, ours };
}

/**
 * Host CPU between two marks, in % of the whole machine: all of it, and what is not this
 * benchmark's (other people's work on a shared host, plus the short-lived runc calls of our own
 * starts, which no process snapshot catches), with the busiest other long-lived processes.
 */
function cpuBetween(a: CpuMark, b: CpuMark, containerIds: ReadonlySet<string>): { hostPct: number; otherPct: number; top: string[] } {
  const wall = b.at - a.at;
  const capacity = wall * cpus().length;
  const hostMs = (b.host.busy - a.host.busy) * JIFFY_MS;
  const top = otherCpu(a.procs, b.procs, ourPids(b.procs, containerIds), wall, cpus().length).top;
  return {
    hostPct: capacity > 0 ? (hostMs / capacity) * 100 : Number.NaN,
    otherPct: capacity > 0 ? (Math.max(0, hostMs - (b.ours - a.ours)) / capacity) * 100 : Number.NaN,
    top,
  };
}

let previousStep: { memAvailable: number; running: number } | undefined;

/** When growth must stop so that stopping what runs still fits in the run's budget. */
function growthDeadline(): number {
  return benchStarted + BUDGET_MS - teardownReserveMs(users.filter((u) => u.running).length);
}

function describeError(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e; c !== undefined && parts.length < 4; c = c instanceof Error ? c.cause : undefined) {
    parts.push(c instanceof Error ? `${c.message}${(c as NodeJS.ErrnoException).code ? ` (${(c as NodeJS.ErrnoException).code})` : ''}` : String(c));
  }
  return parts.join(' <- ');
}

/** Sign-in is setup, not what is measured: retried twice (as the desktop app's user would) before it counts as a failure. */
async function signInWithRetries(u: BenchUser): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ensureSignedIn(u, server!.issuer);
    } catch (e) {
      if (attempt >= 3) throw new Error(`sign-in of ${u.name} failed 3 times: ${describeError(e)}`);
      await sleep(attempt * 2000);
    }
  }
}

async function runStep(target: number): Promise<StepResult | undefined> {
  const stepBegan = Date.now();
  const stepDeadline = stepBegan + STEP_BUDGET_MS;
  const from = users.length;
  for (let i = from; i < target; i++) users.push(makeUser(RUN, i, STACK));
  const fresh = users.slice(from, target);
  const samples: Samples = { cold: [], warm: [], restart: [], rested: [], restWaitMs: [], stop: [], signIn: [] };
  let failure: string | undefined;
  const budgetReason = (): string | undefined =>
    Date.now() > growthDeadline()
      ? `the run's time budget ran out (--budget-minutes ${BUDGET_MS / 60_000}, less ${fmt(teardownReserveMs(users.filter((u) => u.running).length) / 1000)} s kept to stop what runs)`
      : Date.now() > stepDeadline
        ? `the step to ${target} exceeded its time budget of ${STEP_BUDGET_MS / 1000} s`
        : undefined;
  const stopNow = (): boolean => {
    if (failure) return true;
    const reason = guardReason() ?? threadGuardReason() ?? budgetReason();
    if (reason) failure = reason;
    return !!failure;
  };
  const start = async (u: BenchUser): Promise<ApiResult> => {
    await signInWithRetries(u).catch(() => undefined);
    return call(server!.url, 'POST', '/api/proxy/start', u.tokens!.accessToken);
  };

  progress(`step ${target}: signing in ${fresh.length} users`);
  await pool(
    fresh,
    CONCURRENCY,
    async (u) => {
      try {
        samples.signIn.push(await signInWithRetries(u));
      } catch (e) {
        failure ??= e instanceof Error ? e.message : String(e);
      }
    },
    stopNow,
  );

  // Cold starts: each new user's first POST /api/proxy/start.
  progress(`step ${target}: ${fresh.length} cold starts, ${CONCURRENCY} in parallel (${from} proxies already running; load average ${loadavg()})`);
  const m0 = await cpuMark();
  const d0 = daemons(m0.procs);
  const s0 = cpuMsOf(server!.child.pid);
  const coldBegan = Date.now();
  let done = 0;
  await pool(
    fresh,
    CONCURRENCY,
    async (u) => {
      if (!u.tokens) return;
      const r = await start(u);
      if (r.status === 201 || r.status === 200) {
        u.running = true;
        samples.cold.push(r.ms);
      } else {
        failure ??= `cold start of user #${u.index} (${from + done + 1}th proxy) failed after ${fmt(r.ms / 1000)} s: ${shortError(r)}`;
      }
      done += 1;
      if (done % 50 === 0 || done === fresh.length) {
        progress(`step ${target}: ${done}/${fresh.length} cold starts, p50 ${fmt(quantile(samples.cold, 0.5))} ms, p95 ${fmt(quantile(samples.cold, 0.95))} ms`);
      }
    },
    stopNow,
  );
  const coldWallMs = Date.now() - coldBegan;
  const m1 = await cpuMark();
  const d1 = daemons(m1.procs);
  const s1 = cpuMsOf(server!.child.pid);
  const startedNow = samples.cold.length;
  const afterCold = await ourContainers();
  const coldCpu = cpuBetween(m0, m1, new Set(afterCold.running.keys()));

  // Proxies of this run that are gone although nobody here stopped them: another process on this
  // engine removed them (e.g. another cloud server that adopted them at its start and stopped
  // them at its exit). Start them again so the step measures the number it claims.
  const runningNames = new Set(afterCold.running.values());
  const lostUsers = users.filter((u) => u.running && !runningNames.has(u.container));
  let reprovisioned = 0;
  if (lostUsers.length && serverAlive() && !interrupted) {
    progress(`step ${target}: ${lostUsers.length} proxies of this run died or were removed without a stop from this run; starting them again (not counted as cold starts)`);
    await pool(lostUsers, CONCURRENCY, async (u) => {
      const r = await start(u);
      if (r.status === 201 || r.status === 200) reprovisioned += 1;
      else u.running = false;
    });
  }
  if (!users.some((u) => u.running)) {
    stopReason = failure ?? 'no proxy could be started';
    return undefined;
  }

  // Idle: nothing from us for a while, then measure.
  const expected = users.filter((u) => u.running).length;
  progress(`step ${target}: ${expected} proxies running; idle ${IDLE_MS / 1000} s, then measuring`);
  const ours0 = await ourContainers();
  const i0 = await cpuMark();
  const ids0 = new Set(ours0.running.keys());
  const pr0 = containerProcesses(ids0, i0.procs);
  const cg0 = [...ids0].reduce((sum, id) => sum + (cgroupCpuMs(id) || 0), 0);
  const di0 = daemons(i0.procs);
  await sleep(IDLE_MS);
  const i1 = await cpuMark();
  const idleMs = i1.at - i0.at;
  const procs = i1.procs;
  const ours = await ourContainers();
  const ids = new Set(ours.running.keys());
  const pr1 = containerProcesses(ids, procs);
  const cg1 = [...ids].reduce((sum, id) => sum + (ids0.has(id) ? cgroupCpuMs(id) || 0 : 0), 0);
  const di1 = daemons(procs);
  const idleCpu = cpuBetween(i0, i1, ids);
  // The proxies' own (long-lived) processes, present at both ends of the window.
  const before = new Map(i0.procs.map((q) => [q.pid, q.cpuMs]));
  const byPid1 = new Map(procs.map((q) => [q.pid, q.cpuMs]));
  let proxyProcsMs = 0;
  for (const pid of pr1.inside) {
    const a = before.get(pid);
    const b = byPid1.get(pid);
    if (a !== undefined && b !== undefined) proxyProcsMs += b - a;
  }
  const memAvailable = await memAvailableAveraged();
  const stats = await dockerStats(new Set(ours.running.values()), 180_000);
  const cgroup = [...ours.running.keys()].map(cgroupMemMiB).filter(Number.isFinite);
  const shimPss = pr1.shims.map(pssBytes).filter(Number.isFinite);
  const shimRss = pr1.shims.map((pid) => procStatusBytes(pid, 'VmRSS')).filter(Number.isFinite);
  const insidePss = pr1.inside.map(pssBytes).filter(Number.isFinite);
  const ipt = await iptablesRules();
  const net = await probeNetworkCreate();
  const links = linkCount();
  const metrics = await serverMetrics();
  const runningNow = ours.running.size;
  const lostDuringIdle = Math.max(0, expected - runningNow);
  const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

  // Warm: start again for every user whose proxy runs (the idempotent path). Measured even
  // when the cold starts of this step stopped early.
  let warmNotRunning = 0;
  let later: string | undefined;
  if (!interrupted && serverAlive()) {
    const warmUsers = users.filter((u) => u.running);
    progress(`step ${target}: ${warmUsers.length} warm (idempotent) starts`);
    await pool(
      warmUsers,
      CONCURRENCY,
      async (u) => {
        const r = await start(u);
        if (r.status === 200) samples.warm.push(r.ms);
        else if (r.status === 201) warmNotRunning += 1;
        else later ??= `warm start of user #${u.index} failed: ${shortError(r)}`;
      },
      () => {
        if (later || interrupted > 0) return true;
        if (Date.now() > growthDeadline()) later = budgetReason() ?? 'the run\'s time budget ran out';
        return !!later;
      },
    );
  }

  // Restart: stop, then start again, for a sample spread over all running users: back to back
  // (the next stop right after the start), then once more with each start made only when the
  // server's spares are back (a lone start at rest). Without spares the two measure the same.
  const restartPhases: StepResult['restartPhases'] = { 'back to back': {}, 'at rest': {} };
  if (!interrupted && serverAlive() && RESTART_SAMPLE > 0 && !later) {
    const candidates = users.filter((u) => u.running);
    const n = Math.min(RESTART_SAMPLE, candidates.length);
    const sample = Array.from({ length: n }, (_, i) => candidates[Math.floor((i * candidates.length) / n)] as BenchUser);
    for (const kind of ['back to back', 'at rest'] as const) {
      if (later || interrupted || !serverAlive()) break;
      const phasesBefore = await startPhaseTotals();
      progress(`step ${target}: up to ${n} stop + start again, one at a time, ${kind} (at most ${RESTART_PHASE_MS / 1000} s)`);
      const phaseEnd = Date.now() + RESTART_PHASE_MS;
      await pool(
        sample,
        1,
        async (u) => {
          await signInWithRetries(u).catch(() => undefined);
          const s = await call(server!.url, 'POST', '/api/proxy/stop', u.tokens!.accessToken);
          if (s.status !== 200) {
            later ??= `stop of user #${u.index} failed: ${shortError(s)}`;
            return;
          }
          samples.stop.push(s.ms);
          u.running = false;
          if (kind === 'at rest') samples.restWaitMs.push(await sparesBack(phaseEnd));
          const r = await start(u);
          if (r.status === 201 || r.status === 200) {
            (kind === 'at rest' ? samples.rested : samples.restart).push(r.ms);
            u.running = true;
          } else {
            later ??= `re-start after stop of user #${u.index} failed after ${fmt(r.ms / 1000)} s: ${shortError(r)}`;
          }
        },
        () => !!later || interrupted > 0 || Date.now() > phaseEnd || Date.now() > growthDeadline(),
      );
      restartPhases[kind] = phaseMeans(phasesBefore, await startPhaseTotals());
    }
  }

  const result: StepResult = {
    target,
    running: runningNow,
    lost: lostUsers.length + lostDuringIdle,
    reprovisioned,
    samples,
    restartPhases,
    warmNotRunning,
    coldWallMs,
    startsPerSecond: startedNow / (coldWallMs / 1000),
    dockerdCpuMsPerStart: (d1.dockerdCpuMs - d0.dockerdCpuMs) / startedNow,
    containerdCpuMsPerStart: (d1.containerdCpuMs - d0.containerdCpuMs) / startedNow,
    serverCpuMsPerStart: (s1 - s0) / startedNow,
    coldHostBusyPct: coldCpu.hostPct,
    idleHostBusyPct: idleCpu.hostPct,
    coldOtherCpuPct: coldCpu.otherPct,
    idleOtherCpuPct: idleCpu.otherPct,
    otherTop: coldCpu.top,
    loadavg: loadavg(),
    foreignProxies: ours.foreign,
    idleDockerdPctOfCore: di0.dockerdPid === di1.dockerdPid ? ((di1.dockerdCpuMs - di0.dockerdCpuMs) / idleMs) * 100 : Number.NaN,
    // Shims (process CPU) + everything inside the containers (cgroup CPU: the proxies and the engine's health-check runs).
    idleContainersPctOfCore: ((pr1.shimCpuMs - pr0.shimCpuMs + (cg1 - cg0)) / idleMs) * 100,
    idleProxyProcsPctOfCore: (proxyProcsMs / idleMs) * 100,
    idleHealthcheckPctOfCore: (Math.max(0, cg1 - cg0 - proxyProcsMs) / idleMs) * 100,
    idleContainerdPctOfCore: di0.containerdPid === di1.containerdPid ? ((di1.containerdCpuMs - di0.containerdCpuMs) / idleMs) * 100 : Number.NaN,
    dockerStatsMiB: stats.mib,
    dockerStatsMs: stats.ms,
    ...(stats.error ? { dockerStatsError: stats.error } : {}),
    cgroupMiB: cgroup,
    memAvailableMiB: memAvailable / MiB,
    hostDeltaPerProxyMiB: (baseline.memAvailable - memAvailable) / MiB / runningNow,
    hostMarginalPerProxyMiB: previousStep
      ? (previousStep.memAvailable - memAvailable) / MiB / (runningNow - previousStep.running)
      : (baseline.memAvailable - memAvailable) / MiB / runningNow,
    shimCount: pr1.shims.length,
    shimPssMiB: mean(shimPss) / MiB,
    shimRssMiB: mean(shimRss) / MiB,
    proxyProcPssMiB: insidePss.reduce((a, b) => a + b, 0) / MiB / Math.max(1, pr1.shims.length),
    serverRssMiB: serverRss() / MiB,
    dockerdRssMiB: di1.dockerdRss / MiB,
    containerdRssMiB: di1.containerdRss / MiB,
    iptablesRules: ipt.rules,
    iptablesCtllRules: ipt.ctllRules,
    iptablesSaveMs: ipt.ms,
    netCreateMs: net.createMs,
    netRemoveMs: net.removeMs,
    listNetworksMs: net.listMs,
    listContainersMs: ours.ms,
    links: links.all,
    arp: arpEntries(),
    threads: threadsOnHost(procs),
    health: ours.health,
    serverRunningGauge: metrics.running,
    serverStopsUnhealthy: metrics.unhealthy,
    serverStopsExited: metrics.exited,
    metricsScrapeMs: metrics.scrapeMs,
    metricsScrapeSteadyMs: metrics.scrapeSteadyMs,
    metricsScrapeProxies: metrics.scrapeProxies,
    stepWallMs: Date.now() - stepBegan,
  };
  previousStep = { memAvailable, running: runningNow };
  progress(
    `step ${target}: ${runningNow} running; cold p50/p95 ${fmt(quantile(samples.cold, 0.5))}/${fmt(quantile(samples.cold, 0.95))} ms, ` +
      `warm p50 ${fmt(quantile(samples.warm, 0.5))} ms, restart p50 ${fmt(quantile(samples.restart, 0.5))} ms; ` +
      `docker stats mean ${fmt(mean(stats.mib))} MiB, host ${fmt(result.hostDeltaPerProxyMiB)} MiB/proxy; ` +
      `/metrics ${fmt(result.metricsScrapeMs)} ms first, ${fmt(result.metricsScrapeSteadyMs)} ms steady (${result.metricsScrapeProxies} proxies read); ` +
      `idle host CPU ${fmt(result.idleHostBusyPct)}% (other processes ${fmt(result.idleOtherCpuPct)}%); server RSS ${fmt(result.serverRssMiB)} MiB; MemAvailable ${fmt(result.memAvailableMiB)} MiB` +
      (result.lost ? `; ${result.lost} proxies died or were removed from outside (server: ${result.serverStopsExited} exited, ${result.serverStopsUnhealthy} unhealthy so far)` : ''),
  );
  const why = failure ?? later;
  if (why) stopReason = `${why} (with ${runningNow} proxies running)`;
  else if (runningNow < target) stopReason = `only ${runningNow} of ${target} proxies were running at the measurement`;
  return result;
}

// ---------------------------------------------------------------------------------------------
// Teardown: stop everything this run started, then check the engine

async function stopEverything(): Promise<void> {
  const began = Date.now();
  const stops: number[] = [];
  const toStop = users.filter((u) => u.running);
  if (toStop.length && serverAlive() && interrupted < 2) {
    progress(`teardown: stopping ${toStop.length} proxies through POST /api/proxy/stop, ${CONCURRENCY} in parallel`);
    let done = 0;
    await pool(
      toStop,
      CONCURRENCY,
      async (u) => {
        try {
          await ensureSignedIn(u, server!.issuer);
          const r = await call(server!.url, 'POST', '/api/proxy/stop', u.tokens!.accessToken, 120_000);
          if (r.status === 200) {
            stops.push(r.ms);
            u.running = false;
          } else progress(`teardown: stop of user #${u.index} answered ${shortError(r)}`);
        } catch (e) {
          progress(`teardown: stop of user #${u.index} failed: ${e instanceof Error ? e.message : String(e)}`);
        }
        if (++done % 100 === 0) progress(`teardown: ${done}/${toStop.length} stopped`);
      },
      () => interrupted >= 2 || !serverAlive(),
    );
  }
  if (server) {
    progress('teardown: stopping the cloud server');
    await stopChild(server.child, 60_000);
  }
  // Whatever is left of this run's users: remove through the engine (container and network).
  const rt = runtime ?? new DockerRuntime({ stack: STACK });
  runtime = rt;
  const list = async (): Promise<{ ourContainers: string[]; ourNetworks: string[]; foreignContainers: number; foreignNetworks: number }> => {
    const containers = await rt.docker.listContainers({ all: true, filters: { label: [PROXY_LABEL_FILTER] } });
    const networks = await rt.docker.listNetworks({ filters: { label: [NETWORK_LABEL_FILTER] } });
    // The stack is this run's own: its users' proxies, its spares and spares its users took (named
    // after the user, labelled with the spare's id: naming.ts).
    const mine = (labels: Record<string, string> | undefined): boolean => labels?.[LABEL_STACK] === STACK && ownerOf(labels) !== undefined;
    return {
      ourContainers: containers.filter((c) => mine(c.Labels)).map((c) => ownerOfName(c.Names[0], STACK) ?? ownerOf(c.Labels)!),
      ourNetworks: networks.filter((n) => mine(n.Labels)).map((n) => ownerOf(n.Labels)!),
      foreignContainers: containers.filter((c) => !mine(c.Labels)).length,
      foreignNetworks: networks.filter((n) => !mine(n.Labels)).length,
    };
  };
  let left = await list();
  let pruned: string | undefined;
  if (left.ourContainers.length || left.ourNetworks.length) {
    const hashes = [...new Set([...left.ourContainers, ...left.ourNetworks])];
    progress(`teardown: ${left.ourContainers.length} containers and ${left.ourNetworks.length} networks of this run remain; removing them through the engine`);
    await pool(hashes, CONCURRENCY, async (h) => {
      await rt.stop(h).catch((e: unknown) => progress(`teardown: engine removal failed: ${e instanceof Error ? e.message : String(e)}`));
    });
    const p = await rt.pruneOrphans();
    pruned = `pruneOrphans removed ${p.containers} containers, ${p.networks} networks`;
    progress(`teardown: ${pruned}`);
    left = await list();
  }
  await rt.docker.getNetwork(`ctll-bench-probe-${RUN}`).remove().catch(() => undefined);
  const { stdout: psOut } = await run('docker', ['ps', '-a', '--filter', `label=${PROXY_LABEL_FILTER}`, '--format', '{{.Names}}']).catch(() => ({ stdout: '?' }));
  const { stdout: netOut } = await run('docker', ['network', 'ls', '--filter', `label=${NETWORK_LABEL_FILTER}`, '--format', '{{.Name}}']).catch(() => ({ stdout: '?' }));
  const psCount = psOut.trim() ? psOut.trim().split('\n').length : 0;
  const netCount = netOut.trim() ? netOut.trim().split('\n').length : 0;
  const leftovers =
    `docker ps -a --filter label=${PROXY_LABEL_FILTER}: ${psCount} (this run's: ${left.ourContainers.length}); ` +
    `docker network ls --filter label=${NETWORK_LABEL_FILTER}: ${netCount} (this run's: ${left.ourNetworks.length})` +
    (left.foreignContainers || left.foreignNetworks
      ? `; the other ${left.foreignContainers} containers / ${left.foreignNetworks} networks belong to another process on this engine (not this run's users) and were left alone`
      : '');
  progress(`teardown: ${leftovers}`);
  await sleep(2000);
  teardown = { stops, wallMs: Date.now() - began, leftovers, memAvailableMiB: (await memAvailableAveraged()) / MiB, ...(pruned ? { pruned } : {}) };
  await rt.close();
}

// ---------------------------------------------------------------------------------------------
// Report

function p(values: number[], q: number, unit = ''): string {
  return values.length ? `${fmt(quantile(values, q))}${unit}` : 'n/a';
}

function ms(values: number[]): string {
  return values.length ? `${fmt(quantile(values, 0.5))} / ${fmt(quantile(values, 0.95))}` : 'n/a';
}

function report(): void {
  const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
  out('# Proxy provisioning benchmark');
  out();
  out(`Run ${RUN}, ${new Date(benchStarted).toISOString()}, ${((Date.now() - benchStarted) / 60_000).toFixed(1)} min. Steps ${STEPS.join(', ')}; ${CONCURRENCY} starts in parallel; idle ${IDLE_MS / 1000} s before measuring; restart sample ${RESTART_SAMPLE}; spares ${SPARES}${args.spares === undefined ? ' (the server\'s default, CTLL_PROXY_SPARES)' : ''}.`);
  out();
  out(table(['machine', ''], Object.entries(machineInfo)));
  out();
  out(kernelTuned ? `Kernel settings raised for this run (--tune-kernel, the values scripts/deploy sets on a server): ${kernelTuned}.` : 'Kernel settings: the host\'s own (no --tune-kernel).');
  out();
  out(`Baseline (cloud server up, no proxy of this run): MemAvailable ${fmt(baseline.memAvailable / MiB)} MiB, server RSS ${fmt(baseline.serverRss / MiB)} MiB, ` +
    `${baseline.iptables} iptables rules, ${baseline.threads} threads on the host, ${baseline.foreignContainers} proxy containers of other processes on the engine. Server reconcile at start: ${serverLog.adopted}.`);
  out();
  out('## Provisioning: POST /api/proxy/start through the cloud server (ms, p50 / p95)');
  out();
  out(
    table(
      ['step', 'proxies running', 'cold n', 'cold p50 / p95', 'cold max', 'warm (idempotent) p50 / p95', 'restart after stop p50 / p95', 'restart at rest p50 / p95', 'stop p50 / p95', 'starts/s', 'sign-in p50'],
      steps.map((s) => [
        String(s.target),
        String(s.running),
        String(s.samples.cold.length),
        ms(s.samples.cold),
        fmt(max(s.samples.cold)),
        ms(s.samples.warm) + (s.warmNotRunning ? ` (${s.warmNotRunning} were not running)` : ''),
        ms(s.samples.restart),
        ms(s.samples.rested),
        ms(s.samples.stop),
        fmt(s.startsPerSecond),
        p(s.samples.signIn, 0.5),
      ]),
    ),
  );
  out();
  out('Where a lone start\'s time goes (the restart samples; mean ms per phase over the starts that had it, and how many did, from the server\'s ctll_proxy_start_phase_seconds; a start that took a spare ends at claim):');
  out();
  out(
    table(
      ['proxies', 'sample', ...START_PHASES, 'restart mean (client)'],
      steps.flatMap((s) =>
        (['back to back', 'at rest'] as const).map((kind) => [
          String(s.running),
          kind,
          ...START_PHASES.map((phase) => {
            const v = s.restartPhases[kind][phase];
            return v === undefined ? 'n/a' : `${fmt(v.ms)} (${v.n})`;
          }),
          fmt(mean(kind === 'at rest' ? s.samples.rested : s.samples.restart)),
        ]),
      ),
    ),
  );
  out();
  out(`"cold" is each new user\'s first start in that step, ${CONCURRENCY} at a time (a burst: each start waits for the others), with the previous steps\' proxies running; "warm" is a start for every user whose proxy runs; "restart" is stop then start for a sample, one user at a time (a lone start at that scale), back to back; "at rest" the same with each start made once the server\'s ${SPARES} spare(s) were back (waited p50 ${p(steps.flatMap((s) => s.samples.restWaitMs), 0.5)} ms; the same as back to back without spares); "stop" is the stop of those samples.`);
  out();
  out(`## Memory of idle proxies (after ${IDLE_MS / 1000} s idle)`);
  out();
  out(
    table(
      ['proxies', 'docker stats mean', 'p95', 'max', 'cgroup mean', 'host MemAvailable drop / proxy', 'same, this step only', 'shim PSS', 'shim RSS', 'proxy process PSS', 'server RSS', 'dockerd RSS', 'containerd RSS', 'docker stats took'],
      steps.map((s) => [
        String(s.running),
        `${fmt(mean(s.dockerStatsMiB))} MiB`,
        `${p(s.dockerStatsMiB, 0.95)} MiB`,
        `${fmt(max(s.dockerStatsMiB))} MiB`,
        `${fmt(mean(s.cgroupMiB))} MiB`,
        `${fmt(s.hostDeltaPerProxyMiB)} MiB`,
        `${fmt(s.hostMarginalPerProxyMiB)} MiB`,
        `${fmt(s.shimPssMiB)} MiB`,
        `${fmt(s.shimRssMiB)} MiB`,
        `${fmt(s.proxyProcPssMiB)} MiB`,
        `${fmt(s.serverRssMiB)} MiB`,
        `${fmt(s.dockerdRssMiB)} MiB`,
        `${fmt(s.containerdRssMiB)} MiB`,
        s.dockerStatsError ? `failed: ${s.dockerStatsError}` : `${fmt(s.dockerStatsMs / 1000)} s`,
      ]),
    ),
  );
  out();
  out('"docker stats" is the container\'s cgroup memory without page cache; "host MemAvailable drop / proxy" is (MemAvailable at baseline − now) / proxies, which also holds the shim, kernel objects (netns, veth, bridge, iptables) and dockerd/containerd growth; PSS splits shared pages fairly among processes.');
  out();
  out('## What grows with the number of proxies');
  out();
  out(
    table(
      ['proxies', 'host CPU busy while starting', 'host CPU busy idle', 'dockerd / containerd CPU idle (% of a core)', 'our shims + containers CPU idle (% of a core)', 'of which proxy processes / health-check runs', 'dockerd CPU ms / start', 'containerd CPU ms / start', 'server CPU ms / start', 'iptables rules (ctll-)', 'iptables-save', 'network create / remove', 'list networks', 'list containers', 'links', 'ARP entries', 'host threads', 'health ok / bad / starting'],
      steps.map((s) => [
        String(s.running),
        `${fmt(s.coldHostBusyPct)}%`,
        `${fmt(s.idleHostBusyPct)}%`,
        `${fmt(s.idleDockerdPctOfCore)}% / ${fmt(s.idleContainerdPctOfCore)}%`,
        `${fmt(s.idleContainersPctOfCore)}%`,
        `${fmt(s.idleProxyProcsPctOfCore)}% / ${fmt(s.idleHealthcheckPctOfCore)}%`,
        fmt(s.dockerdCpuMsPerStart),
        fmt(s.containerdCpuMsPerStart),
        fmt(s.serverCpuMsPerStart),
        `${s.iptablesRules} (${s.iptablesCtllRules})`,
        `${fmt(s.iptablesSaveMs)} ms`,
        `${fmt(s.netCreateMs)} / ${fmt(s.netRemoveMs)} ms`,
        `${fmt(s.listNetworksMs)} ms`,
        `${fmt(s.listContainersMs)} ms`,
        String(s.links),
        String(s.arp),
        String(s.threads),
        `${s.health.healthy} / ${s.health.unhealthy} / ${s.health.starting}`,
      ]),
    ),
  );
  out();
  // The values in force during the run (--tune-kernel has put the host's own back by now).
  out(`Limits on this host during the run: kernel.pid_max ${machineInfo['kernel.pid_max']}, net.ipv4.neigh.default.gc_thresh3 ${machineInfo['neigh gc_thresh3']} (neighbour entries, all network namespaces together: 2 per proxy), subnet range 10.200.0.0/16 in /28 blocks = 4096 user networks.`);
  out();
  out('## Conditions: what else the host was doing (it may be shared with other people\'s work)');
  out();
  out(
    table(
      ['proxies', 'load average', 'CPU not ours while starting', 'while idle', 'busiest other processes (while starting)', 'other proxies on the engine', 'ours gone without our stop / started again', 'server: exited / unhealthy'],
      steps.map((s) => [
        String(s.running),
        s.loadavg,
        `${fmt(s.coldOtherCpuPct)}%`,
        `${fmt(s.idleOtherCpuPct)}%`,
        s.otherTop.join(', ') || '-',
        String(s.foreignProxies),
        `${s.lost} / ${s.reprovisioned}${s.warmNotRunning ? ` (+${s.warmNotRunning} found gone by warm starts)` : ''}`,
        `${s.serverStopsExited} / ${s.serverStopsUnhealthy}`,
      ]),
    ),
  );
  out();
  out('## /metrics scrape time (per-proxy cgroup reads and firewall counters included)');
  out();
  out(
    table(
      ['proxies', 'proxies with figures', 'first scrape after the idle wait (ms)', 'steady scrape, 2.1 s later (ms)'],
      steps.map((s) => [String(s.running), String(s.metricsScrapeProxies), fmt(s.metricsScrapeMs), fmt(s.metricsScrapeSteadyMs)]),
    ),
  );
  out();
  out('"CPU not ours" is the host\'s busy time minus the CPU of this benchmark, its cloud server, dockerd/containerd, our shims and our containers\' cgroups, in % of the whole machine: other people\'s work on this host, plus the short-lived runc processes of our own starts. High values mean the latencies above are inflated by contention.');
  out();

  // Targets
  const allCold = steps.flatMap((s) => s.samples.cold);
  const allRestart = steps.flatMap((s) => s.samples.restart);
  const lastRested = steps[steps.length - 1]?.samples.rested ?? [];
  const worstColdP95 = Math.max(...steps.map((s) => (s.samples.cold.length ? quantile(s.samples.cold, 0.95) : Number.NaN)).filter(Number.isFinite));
  const warmP95 = Math.max(...steps.map((s) => (s.samples.warm.length ? quantile(s.samples.warm, 0.95) : Number.NaN)).filter(Number.isFinite));
  const last = steps[steps.length - 1];
  const reached = Math.max(0, ...steps.map((s) => s.running));
  const statsMean = last ? mean(last.dockerStatsMiB) : Number.NaN;
  const statsP95 = last && last.dockerStatsMiB.length ? quantile(last.dockerStatsMiB, 0.95) : Number.NaN;
  const hostPer = last ? last.hostDeltaPerProxyMiB : Number.NaN;
  const verdict = (value: number, target: number): string => (!Number.isFinite(value) ? 'n/a' : value <= target ? 'met' : 'missed');
  const verdictAtLeast = (value: number, target: number): string => (value >= target ? 'met' : 'missed');
  const ratioTxt = (value: number, target: number): string => (Number.isFinite(value) && target ? `${(value / target).toFixed(2)}×` : 'n/a');
  out('## Against the targets (ratio = measured / target; ≤ 1.00× is within a "less than" target)');
  out();
  out(
    table(
      ['target', 'measured', 'ratio', 'verdict'],
      [
        ['original: < 5 s per proxy (cold p95, worst step)', `${fmt(worstColdP95)} ms`, ratioTxt(worstColdP95, TARGETS.original.provisionMs), verdict(worstColdP95, TARGETS.original.provisionMs)],
        ['ours: p95 < 1 s (cold, worst step)', `${fmt(worstColdP95)} ms`, ratioTxt(worstColdP95, TARGETS.ours.provisionP95Ms), verdict(worstColdP95, TARGETS.ours.provisionP95Ms)],
        ['ours: p95 < 1 s (cold, all steps pooled)', `${p(allCold, 0.95)} ms`, ratioTxt(quantile(allCold, 0.95), TARGETS.ours.provisionP95Ms), verdict(quantile(allCold, 0.95), TARGETS.ours.provisionP95Ms)],
        ['ours: p95 < 1 s (restart after stop, pooled)', `${p(allRestart, 0.95)} ms`, ratioTxt(quantile(allRestart, 0.95), TARGETS.ours.provisionP95Ms), verdict(quantile(allRestart, 0.95), TARGETS.ours.provisionP95Ms)],
        ['issue 12: p95 < 1 s (restart at rest, largest step)', `${p(lastRested, 0.95)} ms`, ratioTxt(quantile(lastRested, 0.95), TARGETS.ours.provisionP95Ms), verdict(quantile(lastRested, 0.95), TARGETS.ours.provisionP95Ms)],
        ['ours: p95 < 1 s (warm/idempotent, worst step)', `${fmt(warmP95)} ms`, ratioTxt(warmP95, TARGETS.ours.provisionP95Ms), verdict(warmP95, TARGETS.ours.provisionP95Ms)],
        ['original: ~50 MB per user (host MemAvailable drop / proxy, largest step)', `${fmt((hostPer * MiB) / 1e6)} MB`, ratioTxt((hostPer * MiB) / 1e6, TARGETS.original.memoryMiB), verdict((hostPer * MiB) / 1e6, TARGETS.original.memoryMiB)],
        ['ours: < 20 MB per idle proxy (docker stats mean, largest step)', `${fmt((statsMean * MiB) / 1e6)} MB`, ratioTxt((statsMean * MiB) / 1e6, TARGETS.ours.idleMemoryMiB), verdict((statsMean * MiB) / 1e6, TARGETS.ours.idleMemoryMiB)],
        ['ours: < 20 MB per idle proxy (docker stats p95, largest step)', `${fmt((statsP95 * MiB) / 1e6)} MB`, ratioTxt((statsP95 * MiB) / 1e6, TARGETS.ours.idleMemoryMiB), verdict((statsP95 * MiB) / 1e6, TARGETS.ours.idleMemoryMiB)],
        ['ours: < 20 MB per idle proxy (host MemAvailable drop / proxy, largest step)', `${fmt((hostPer * MiB) / 1e6)} MB`, ratioTxt((hostPer * MiB) / 1e6, TARGETS.ours.idleMemoryMiB), verdict((hostPer * MiB) / 1e6, TARGETS.ours.idleMemoryMiB)],
        ['original: 1,000+ users per host', `${reached}`, ratioTxt(reached, TARGETS.original.users), verdictAtLeast(reached, TARGETS.original.users)],
        ['ours: 1,000 on this 2-core machine', `${reached}`, ratioTxt(reached, TARGETS.ours.users), verdictAtLeast(reached, TARGETS.ours.users)],
      ],
    ),
  );
  out();
  out('(MB = 10^6 bytes here, to compare with the targets as stated; the tables above are in MiB.)');
  out();
  out('## Where growth stopped');
  out();
  out(stopReason ? `Stopped at ${reached} proxies: ${stopReason}` : `Not stopped: all steps up to ${STEPS[STEPS.length - 1]} completed (${reached} proxies).`);
  out();
  out(`Cloud server log: ${serverLog.warnings} warnings, ${serverLog.errors} errors${serverLog.lastErrors.length ? `; last errors:\n  - ${serverLog.lastErrors.join('\n  - ')}` : ''}.`);
  out();
  out('## Teardown');
  out();
  if (teardown) {
    out(`Stopped ${teardown.stops.length} proxies through POST /api/proxy/stop in ${fmt(teardown.wallMs / 1000)} s (p50 / p95 ${ms(teardown.stops)} ms)${teardown.pruned ? `; ${teardown.pruned}` : ''}.`);
    out(`MemAvailable after teardown ${fmt(teardown.memAvailableMiB)} MiB (baseline ${fmt(baseline.memAvailable / MiB)} MiB).`);
    out(`Leftovers: ${teardown.leftovers}.`);
  } else out('teardown did not run');
}

// ---------------------------------------------------------------------------------------------
// Main

/** Settings --tune-kernel changed, with the values to put back. */
const kernelChanged: Array<{ path: string; setting: string; was: string; now: number }> = [];
let kernelTuned: string | undefined;

function tuneKernel(): void {
  for (const [setting, want] of Object.entries(RECOMMENDED_SYSCTLS)) {
    const path = sysctlPath(setting);
    const was = readFileSync(path, 'utf8').trim();
    if (Number(was) >= want) continue;
    writeFileSync(path, String(want));
    kernelChanged.push({ path, setting, was, now: want });
  }
  kernelTuned = kernelChanged.length ? `${kernelChanged.map((k) => `${k.setting} ${k.was} -> ${k.now}`).join(', ')} (put back at the end)` : 'the host already had the recommended values';
  progress(`--tune-kernel: ${kernelTuned}`);
}

function restoreKernel(): void {
  for (const k of kernelChanged.splice(0)) {
    try {
      writeFileSync(k.path, k.was);
    } catch (e) {
      progress(`could not put ${k.setting} back to ${k.was}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

async function main(): Promise<void> {
  const probe = await DockerRuntime.probe();
  if (!probe.ok) throw new Error(`${probe.error} (start dockerd, then run again)`);
  await run('docker', ['image', 'inspect', IMAGE]).catch(async () => {
    progress(`${IMAGE} is missing: building it with scripts/build-proxy-image.sh`);
    await run(join(ROOT, 'scripts/build-proxy-image.sh'), [], { timeout: 600_000 });
  });
  if (args['tune-kernel']) tuneKernel();
  machineInfo = await machine();
  runtime = new DockerRuntime({ stack: STACK });

  progress('starting the cloud server (node --import tsx server/src/main.ts --runtime docker --port 0)');
  server = await startServer();
  progress(`cloud server at ${server.url} (pid ${server.child.pid}), issuer ${server.issuer.issuer}; reconcile: ${serverLog.adopted}`);
  await sleep(2000);
  const foreign = (await runtime.docker.listContainers({ all: true, filters: { label: [PROXY_LABEL_FILTER] } })).length;
  baseline = {
    memAvailable: await memAvailableAveraged(5),
    serverRss: serverRss(),
    iptables: (await iptablesRules()).rules,
    threads: threadsOnHost(),
    foreignContainers: foreign,
  };
  if (foreign) progress(`note: ${foreign} proxy containers of another process are on this engine; they are not counted and not touched`);

  for (const target of STEPS) {
    if (target <= users.length) continue;
    if (Date.now() > growthDeadline()) {
      stopReason = `the run's time budget ran out before the step to ${target}`;
      break;
    }
    const result = await runStep(target);
    if (result) steps.push(result);
    if (stopReason) break;
  }
  if (stopReason) progress(`growth stopped: ${stopReason}`);
}

let exitCode = 0;
try {
  await main();
} catch (e) {
  stopReason ??= `the benchmark itself failed: ${e instanceof Error ? e.message : String(e)}`;
  progress(stopReason);
  exitCode = steps.length ? 0 : 1;
} finally {
  try {
    await stopEverything();
  } catch (e) {
    progress(`teardown failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    exitCode = 1;
  }
  restoreKernel();
}
report();
if (args.json) {
  writeFileSync(
    args.json,
    JSON.stringify({ run: RUN, machine: machineInfo, baseline, steps, stopReason, teardown, serverLog }, null, 2),
  );
  progress(`raw results written to ${args.json}`);
}
process.exit(exitCode);
