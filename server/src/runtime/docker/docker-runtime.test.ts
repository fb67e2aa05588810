/**
 * DockerRuntime against the real Docker engine: the proxy image is built from local files
 * (scripts/build-proxy-image.sh), containers and networks are real, `docker inspect` is the
 * judge of what was created. Without an engine the suite is skipped, except in CI (CI=true),
 * where a missing engine is a failure: CI machines must have Docker.
 *
 * Every container and network a test creates belongs to a user id with this run's random tag;
 * the `after` hook removes all of them whatever happened. Network traffic goes only to our own
 * containers, to servers this test starts on the host, and to two addresses that are never
 * routed anywhere (10.255.255.1, 192.0.2.1 from TEST-NET-1): the proxies' networks are internal,
 * so those packets do not even leave the host.
 *
 * The isolation firewall (isolation-firewall.ts) is real too: real iptables rules on this host,
 * which needs root. Without it the firewall tests are skipped (a failure in CI) and the runtime
 * runs in 'warn' mode, so the rest still runs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { Bridge } from '@cloudtolocalllm/bridge';
import { BRIDGE_PATH } from '@cloudtolocalllm/bridge/connection/protocol';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import type { ProxySpec } from '../runtime.js';
import { overlaps, parseCidr } from '@cloudtolocalllm/proxy-spec/cidr';
import { containerCreateOptions, gatewayAddress, networkCreateOptions } from '@cloudtolocalllm/proxy-spec/container-spec';
import { DockerRuntime } from './docker-runtime.js';
import { writeFirewallStatus } from '../../firewall/firewall-status.js';
import { ensureIsolationFirewall, ISOLATION_CHAIN, removeIsolationFirewall } from '../../firewall/isolation-firewall.js';
import { containerName, LABEL_OWNER, networkName } from '@cloudtolocalllm/proxy-spec/naming';

const run = promisify(execFile);
const BUILD_SCRIPT = fileURLToPath(new URL('../../../../scripts/build-proxy-image.sh', import.meta.url));
const IMAGE = process.env['IMAGE'] ?? 'cloudtolocalllm/streaming-proxy:local';
const BROKEN_IMAGE = `cloudtolocalllm/streaming-proxy:test-broken-${process.pid}`;

const docker = new Docker();
const probe = await DockerRuntime.probe(docker);
const inCI = process.env['CI'] === 'true';
if (!probe.ok && inCI) {
  test('a Docker engine is reachable (CI machines must have one)', () => assert.fail(probe.error));
}
const skip = probe.ok ? false : `no Docker engine here (${probe.error}); CI=true makes this a failure`;

// What the runtime does before its first start; here first, to know whether this host allows it.
const firewall = probe.ok ? await ensureIsolationFirewall() : ({ ok: false, error: 'no Docker engine' } as const);
if (probe.ok && !firewall.ok && inCI) {
  test('the isolation firewall can be installed (CI runs these tests as root)', () => assert.fail(firewall.error));
}
const noFirewall = firewall.ok ? false : `the isolation firewall cannot be installed here (${firewall.error}); CI=true makes this a failure`;
const asRoot = process.getuid?.() === 0 ? false : 'runs the runtime as the unprivileged user nobody, which needs root to switch to; CI runs as root';
/** Runs an ES module script (through tsx, from the repository's root) as the unprivileged user nobody. */
const asNobody = (script: string): Promise<{ stdout: string; stderr: string }> =>
  run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    uid: 65534,
    gid: 65534,
    cwd: fileURLToPath(new URL('../../../..', import.meta.url)),
    env: { ...process.env, HOME: os.tmpdir() },
    timeout: 60_000,
  });
if (inCI && asRoot) test('the tests run as root (CI machines must)', () => assert.fail(asRoot));
const FIREWALL_MODE = firewall.ok ? 'enforce' : 'warn';
/** What a connection attempt that fails fast ends with (not a timeout). */
const FAST_FAILURES = ['ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH'];

/** The rules isolation-firewall.ts must leave, per address family, as `iptables -S` prints them. */
const FIREWALL_FAMILIES = [
  {
    command: 'iptables',
    chain: [
      `-A ${ISOLATION_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
      `-A ${ISOLATION_CHAIN} -p tcp -j REJECT --reject-with tcp-reset`,
      `-A ${ISOLATION_CHAIN} -m addrtype --dst-type LOCAL -j REJECT --reject-with icmp-port-unreachable`,
      `-A ${ISOLATION_CHAIN} -j REJECT --reject-with icmp-net-unreachable`,
    ],
  },
  {
    command: 'ip6tables',
    chain: [
      `-A ${ISOLATION_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
      `-A ${ISOLATION_CHAIN} -p tcp -j REJECT --reject-with tcp-reset`,
      `-A ${ISOLATION_CHAIN} -m addrtype --dst-type LOCAL -j REJECT --reject-with icmp6-port-unreachable`,
      `-A ${ISOLATION_CHAIN} -j REJECT --reject-with icmp6-no-route`,
    ],
  },
];

/** Where each parent chain has the jump to ours (1-based positions), and our chain's rules (undefined: no chain). */
async function firewallState(command: string): Promise<{ INPUT: number[]; 'DOCKER-USER': number[]; chain: string[] | undefined }> {
  const rules = async (chain: string): Promise<string[] | undefined> => {
    try {
      return (await run(command, ['-w', '10', '-S', chain])).stdout.split('\n').filter((l) => l.startsWith('-A '));
    } catch {
      return undefined;
    }
  };
  const jumps = async (parent: string) =>
    ((await rules(parent)) ?? []).flatMap((r, i) => (r === `-A ${parent} -i ctll-+ -j ${ISOLATION_CHAIN}` ? [i + 1] : []));
  return { INPUT: await jumps('INPUT'), 'DOCKER-USER': await jumps('DOCKER-USER'), chain: await rules(ISOLATION_CHAIN) };
}

/** This run's tag: every user id (and so every object) of this file carries it. */
const RUN = randomBytes(4).toString('hex');
const created = new Set<string>();
function spec(name: string): ProxySpec {
  const userId = `auth0|ctll-test-${RUN}-${name}`;
  const hash = userHash(userId);
  created.add(hash);
  return { userId, userHash: hash, secret: `secret-${randomBytes(12).toString('hex')}` };
}

/** `docker inspect` (the CLI: what an operator would see); undefined if there is no such object. */
async function inspect(type: 'container' | 'network', name: string): Promise<any> {
  try {
    const { stdout } = await run('docker', ['inspect', '--type', type, name]);
    return (JSON.parse(stdout) as unknown[])[0];
  } catch (e) {
    if (/No such|not found/i.test(String((e as { stderr?: string }).stderr))) return undefined;
    throw e;
  }
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('timeout', function (this: http.ClientRequest) {
        this.destroy(new Error('timeout'));
      })
      .on('error', reject);
  });
}

interface Probe {
  name: string;
  host: string;
  port: number;
}
interface ProbeResult {
  name: string;
  target: string;
  result: string;
  ms: number;
}

/** TCP connection attempts made *inside* a container, with the image's own node. */
async function connectFrom(container: string, targets: Probe[], timeoutMs: number): Promise<ProbeResult[]> {
  const script = `
    const net = require('net');
    const targets = ${JSON.stringify(targets)};
    Promise.all(targets.map((t) => new Promise((done) => {
      const started = Date.now();
      const finish = (result) => { socket.destroy(); done({ name: t.name, target: t.host + ':' + t.port, result, ms: Date.now() - started }); };
      const socket = net.connect({ host: t.host, port: t.port });
      socket.setTimeout(${timeoutMs}, () => finish('timeout'));
      socket.on('connect', () => finish('connected'));
      socket.on('error', (e) => finish(e.code || e.message));
    }))).then((r) => process.stdout.write(JSON.stringify(r)));`;
  const { stdout } = await run('docker', ['exec', container, '/usr/bin/node', '-e', script], { timeout: timeoutMs + 10_000 });
  return JSON.parse(stdout) as ProbeResult[];
}

async function dockerBuildFromStdin(tag: string, dockerfile: string): Promise<void> {
  const child = spawn('docker', ['build', '-q', '-t', tag, '-'], { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  child.stdin.end(dockerfile);
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`docker build failed: ${stderr}`);
}

const ours = (labels: Record<string, string> | undefined) => created.has(labels?.[LABEL_OWNER] ?? '');

async function leftovers(): Promise<{ containers: string[]; networks: string[] }> {
  const containers = (await docker.listContainers({ all: true })).filter((c) => ours(c.Labels)).map((c) => c.Names[0] ?? c.Id);
  const networks = (await docker.listNetworks()).filter((n) => ours(n.Labels)).map((n) => n.Name);
  return { containers, networks };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('DockerRuntime on a real Docker engine', { skip, timeout: 240_000 }, () => {
  let runtime: DockerRuntime;
  let buildMs = 0;
  let buildOutput = '';
  let imageId = '';
  const exits: Array<[string, string]> = [];

  before(async () => {
    const started = Date.now();
    const { stdout } = await run('bash', [BUILD_SCRIPT], { env: { ...process.env, IMAGE }, timeout: 300_000 });
    buildMs = Date.now() - started;
    buildOutput = stdout.trim();
    imageId = (await docker.getImage(IMAGE).inspect()).Id;
    runtime = new DockerRuntime({
      docker,
      image: IMAGE,
      subnetRange: '10.200.0.0/16',
      engineHealthIntervalMs: 1000, // on here (off by default) to show the image's check passes under the hardening
      startTimeoutMs: 90_000,
      firewall: FIREWALL_MODE,
    });
    runtime.on('exit', (hash, reason) => exits.push([hash, reason]));
  });

  after(async () => {
    // Whatever happened: every object of this run's users goes.
    for (const hash of created) await runtime?.stop(hash).catch(() => undefined);
    for (const c of (await docker.listContainers({ all: true })).filter((c) => ours(c.Labels))) {
      await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    for (const n of (await docker.listNetworks()).filter((n) => ours(n.Labels))) {
      await docker.getNetwork(n.Id).remove().catch(() => undefined);
    }
    await docker.getImage(BROKEN_IMAGE).remove({ force: true }).catch(() => undefined);
    await runtime?.close();
  });

  test('the image builds from local files, and a second build is a fast no-op', async (t) => {
    t.diagnostic(`first call: ${buildMs} ms: ${buildOutput.replace(/\n/g, ' | ')}`);
    const started = Date.now();
    const { stdout } = await run('bash', [BUILD_SCRIPT], { env: { ...process.env, IMAGE } });
    const ms = Date.now() - started;
    t.diagnostic(`second call: ${ms} ms: ${stdout.trim()}`);
    // The no-op is what makes it fast: nothing was built and the image is the same one.
    assert.match(stdout, /is up to date/);
    assert.doesNotMatch(stdout, /building/);
    const image = await docker.getImage(IMAGE).inspect();
    assert.equal(image.Id, imageId, 'the second call left the image as it was');
    assert.equal(image.Config.User, '1001:1001');
    assert.deepEqual(image.Config.Cmd, ['node', '/app/proxy.mjs']);
    assert.deepEqual(Object.keys(image.Config.ExposedPorts ?? {}), ['8080/tcp']);
    assert.deepEqual(image.Config.Healthcheck?.Test, ['CMD', 'node', '/app/healthcheck.mjs']);
    assert.equal(image.Config.Healthcheck?.Interval, 30e9);
    for (const env of ['PROXY_HOST=0.0.0.0', 'PROXY_PORT=8080', 'NODE_ENV=production']) assert.ok(image.Config.Env?.includes(env), env);
  });

  test('start: healthy, hardened, internal network on our subnet, nothing reveals the user id', async (t) => {
    const s = spec('inspect');
    const proxy = await runtime.start(s);
    const ip = new URL(proxy.endpoint).hostname;
    assert.equal(proxy.id, `ctll-proxy-${s.userHash}`);
    assert.equal(proxy.userHash, s.userHash);
    assert.equal(proxy.secret, s.secret);
    assert.match(proxy.endpoint, /^http:\/\/10\.200\.\d+\.\d+:8080$/);

    const health = await get(`${proxy.endpoint}/health`);
    assert.equal(health.status, 200);
    assert.equal((JSON.parse(health.body) as { status: string }).status, 'ok');
    // The proxy runs with the secret we gave it (and the owner hash).
    assert.equal((await get(`${proxy.endpoint}/api/tags`)).status, 401);
    assert.equal((await get(`${proxy.endpoint}/api/tags`, { authorization: 'Bearer wrong-wrong-wrong-wrong' })).status, 401);
    assert.notEqual((await get(`${proxy.endpoint}/api/tags`, { authorization: `Bearer ${s.secret}` })).status, 401);

    const c = await inspect('container', containerName(s.userHash));
    const h = c.HostConfig;
    t.diagnostic(
      `inspect: Memory=${h.Memory} MemorySwap=${h.MemorySwap} NanoCpus=${h.NanoCpus} CpuShares=${h.CpuShares} PidsLimit=${h.PidsLimit} ` +
        `ReadonlyRootfs=${h.ReadonlyRootfs} CapDrop=${JSON.stringify(h.CapDrop)} SecurityOpt=${JSON.stringify(h.SecurityOpt)} ` +
        `User=${c.Config.User} RestartPolicy=${JSON.stringify(h.RestartPolicy)} AutoRemove=${h.AutoRemove} Tmpfs=${JSON.stringify(h.Tmpfs)} ` +
        `LogConfig=${JSON.stringify(h.LogConfig)} NetworkMode=${h.NetworkMode.slice(0, 20)}… PortBindings=${JSON.stringify(h.PortBindings)}`,
    );
    assert.equal(h.Memory, 536870912);
    assert.equal(h.MemorySwap, 536870912);
    assert.equal(h.NanoCpus, 500000000);
    assert.equal(h.CpuShares, 0, 'a CPU limit, not a weight');
    assert.equal(h.PidsLimit, 128);
    assert.equal(h.ReadonlyRootfs, true);
    assert.deepEqual(h.CapDrop, ['ALL']);
    assert.deepEqual(h.SecurityOpt, ['no-new-privileges:true']);
    assert.equal(h.Privileged, false);
    assert.equal(c.Config.User, '1001:1001');
    assert.equal(h.RestartPolicy.Name, 'no');
    assert.equal(h.AutoRemove, true);
    assert.deepEqual(h.Tmpfs, { '/tmp': 'rw,noexec,nosuid,nodev,size=16m' });
    assert.deepEqual(h.LogConfig, { Type: 'json-file', Config: { 'max-file': '1', 'max-size': '1m' } });
    assert.equal(h.NetworkMode, networkName(s.userHash));
    assert.ok(!h.PortBindings || Object.values(h.PortBindings).every((b) => !b), 'no published ports');
    assert.ok(Object.values(c.NetworkSettings.Ports ?? {}).every((b) => !b), 'no published ports');
    assert.deepEqual(Object.keys(c.NetworkSettings.Networks), [networkName(s.userHash)], 'only its own network');
    assert.equal(c.NetworkSettings.Networks[networkName(s.userHash)].IPAddress, ip);
    // (plus the labels the image itself carries, such as its input hash)
    assert.equal(c.Config.Labels['cloudtolocalllm.type'], 'streaming-proxy');
    assert.equal(c.Config.Labels['cloudtolocalllm.owner'], s.userHash);
    assert.ok(c.Config.Env.includes(`PROXY_OWNER=${s.userHash}`));
    assert.equal(c.Config.Healthcheck.Interval, 1e9);

    const n = await inspect('network', networkName(s.userHash));
    const subnet = n.IPAM.Config[0].Subnet as string;
    t.diagnostic(`network: Internal=${n.Internal} Subnet=${subnet} Gateway=${n.IPAM.Config[0].Gateway} bridge=${n.Options['com.docker.network.bridge.name']} Labels=${JSON.stringify(n.Labels)}`);
    assert.equal(n.Internal, true);
    assert.equal(n.Driver, 'bridge');
    assert.equal(parseCidr(subnet).prefix, 28);
    assert.ok(overlaps(parseCidr(subnet), parseCidr('10.200.0.0/16')));
    assert.equal(n.IPAM.Config[0].Gateway, gatewayAddress(subnet));
    assert.deepEqual(n.Labels, {
      'cloudtolocalllm.type': 'user-network',
      'cloudtolocalllm.owner': s.userHash,
      'cloudtolocalllm.subnet': subnet,
    });

    const everything = JSON.stringify([c, n]) + (await run('docker', ['ps', '-a', '--no-trunc'])).stdout;
    assert.ok(!everything.includes(s.userId), 'the raw user id appears in docker inspect / docker ps');
    assert.ok(!everything.includes(`ctll-test-${RUN}`), 'part of the raw user id appears in docker inspect / docker ps');

    // The engine's own health check (the image's HEALTHCHECK) passes under all that hardening.
    // It starts as "starting" and ends "healthy" or "unhealthy"; the test's timeout bounds the wait.
    let status = 'starting';
    while (status === 'starting') {
      await sleep(250);
      status = (await inspect('container', containerName(s.userHash))).State.Health.Status;
    }
    assert.equal(status, 'healthy');
    await runtime.stop(s.userHash);
  });

  test('stop removes the container and the network, is idempotent, and reports no exit', async (t) => {
    const s = spec('stop');
    const starts: number[] = [];
    const stops: number[] = [];
    for (let i = 0; i < 5; i++) {
      let started = performance.now();
      await runtime.start(s);
      starts.push(performance.now() - started);
      assert.ok(await inspect('container', containerName(s.userHash)));
      started = performance.now();
      await runtime.stop(s.userHash);
      stops.push(performance.now() - started);
      assert.equal(await inspect('container', containerName(s.userHash)), undefined, 'container still there');
      assert.equal(await inspect('network', networkName(s.userHash)), undefined, 'network still there');
    }
    t.diagnostic(`start (one proxy, sequential): p50 ${Math.round(percentile(starts, 50))} ms, max ${Math.round(Math.max(...starts))} ms`);
    t.diagnostic(`stop: p50 ${Math.round(percentile(stops, 50))} ms`);
    await runtime.stop(s.userHash);
    await runtime.stop(spec('never-started').userHash);
    await sleep(500); // any die event would have arrived by now
    assert.deepEqual(exits.filter(([h]) => h === s.userHash), []);
  });

  test('list() finds running proxies with their endpoint, creation time and secret', async () => {
    const a = spec('list-a');
    const b = spec('list-b');
    const before = Date.now();
    const [pa, pb] = await Promise.all([runtime.start(a), runtime.start(b)]);
    const found = await runtime.list();
    for (const [s, p] of [
      [a, pa],
      [b, pb],
    ] as const) {
      const item = found.find((f) => f.userHash === s.userHash);
      assert.ok(item, 'listed');
      assert.equal(item.id, containerName(s.userHash));
      assert.equal(item.endpoint, p.endpoint);
      assert.equal(item.secret, s.secret);
      assert.ok(item.createdAt >= before - 1000 && item.createdAt <= Date.now(), `createdAt ${item.createdAt}`);
    }
    await runtime.stop(a.userHash);
    const after = await runtime.list();
    assert.ok(!after.some((f) => f.userHash === a.userHash));
    assert.ok(after.some((f) => f.userHash === b.userHash));
    await runtime.stop(b.userHash);
  });

  test('a proxy killed from outside is reported as an exit', async () => {
    const s = spec('killed');
    await runtime.start(s);
    const exited = new Promise<string>((resolve) =>
      runtime.on('exit', (hash, reason) => {
        if (hash === s.userHash) resolve(reason);
      }),
    );
    await run('docker', ['kill', containerName(s.userHash)]);
    assert.equal(await exited, 'the proxy container died (exit code 137, killed with SIGKILL)');
    // AutoRemove took the container; the network is what stop() (or pruneOrphans) cleans.
    await runtime.stop(s.userHash);
    assert.equal(await inspect('network', networkName(s.userHash)), undefined);
  });

  test('a proxy that cannot start fails with its exit code and last output, leaving nothing', async () => {
    await dockerBuildFromStdin(
      BROKEN_IMAGE,
      `FROM ${IMAGE}\nCMD ["node", "-e", "console.error('proxy test: refusing to start'); process.exit(3)"]\n`,
    );
    const broken = new DockerRuntime({ docker, image: BROKEN_IMAGE, firewall: FIREWALL_MODE });
    const s = spec('broken');
    try {
      await assert.rejects(
        broken.start(s),
        (e: Error) => {
          assert.match(e.message, /^could not start the streaming proxy for user [0-9a-f]{12}: the container exited during start \(exit code 3\)/);
          assert.match(e.message, /its last output:\n {2}proxy test: refusing to start/);
          assert.ok(!e.message.includes(s.userId));
          return true;
        },
      );
      assert.deepEqual(await leftovers().then((l) => [...l.containers, ...l.networks].filter((x) => x.includes(s.userHash))), []);
    } finally {
      await broken.close();
    }
  });

  test('pruneOrphans removes leftover labelled networks and stopped containers, and nothing alive', async () => {
    const live = spec('prune-live');
    const proxy = await runtime.start(live);
    // What a crash between "network created" and "container removed" leaves: a labelled network
    // and a labelled container that never ran.
    const orphan = spec('prune-orphan');
    const subnet = await runtime.subnets.withSubnet(async (candidate) => {
      await docker.createNetwork(networkCreateOptions(orphan.userHash, candidate));
      return candidate;
    });
    await docker.createContainer(containerCreateOptions({ userHash: orphan.userHash, secret: orphan.secret, image: IMAGE, subnet, limits: runtime.limits }));
    const lonely = spec('prune-network-only');
    await runtime.subnets.withSubnet((candidate) => docker.createNetwork(networkCreateOptions(lonely.userHash, candidate)));

    const pruned = await runtime.pruneOrphans();
    assert.ok(pruned.containers >= 1 && pruned.networks >= 2, JSON.stringify(pruned));
    assert.equal(await inspect('container', containerName(orphan.userHash)), undefined);
    assert.equal(await inspect('network', networkName(orphan.userHash)), undefined);
    assert.equal(await inspect('network', networkName(lonely.userHash)), undefined);
    assert.equal((await get(`${proxy.endpoint}/health`)).status, 200, 'a running proxy is not an orphan');
    assert.ok(await inspect('network', networkName(live.userHash)));
    await runtime.stop(live.userHash);
  });

  test('stacks on one engine: each server sees, prunes and is told about only its own proxies; one user gets one proxy per stack', async () => {
    const s = spec('stacks');
    const [blueName, greenName] = [`blue-${RUN}`, `green-${RUN}`];
    const blue = new DockerRuntime({ docker, image: IMAGE, stack: blueName, startTimeoutMs: 90_000, firewall: FIREWALL_MODE });
    const green = new DockerRuntime({ docker, image: IMAGE, stack: greenName, startTimeoutMs: 90_000, firewall: FIREWALL_MODE });
    const exits: Record<string, string[]> = { blue: [], green: [], none: [] };
    blue.on('exit', (hash) => void (hash === s.userHash && exits['blue']!.push(hash)));
    green.on('exit', (hash) => void (hash === s.userHash && exits['green']!.push(hash)));
    const noStack = (hash: string): void => void (hash === s.userHash && exits['none']!.push(hash));
    runtime.on('exit', noStack);
    try {
      const pb = await blue.start(s);
      const pg = await green.start(s);
      assert.equal(pb.id, `ctll-${blueName}-proxy-${s.userHash}`);
      assert.equal(pg.id, `ctll-${greenName}-proxy-${s.userHash}`);
      assert.notEqual(pb.endpoint, pg.endpoint);
      const c = await inspect('container', pb.id);
      assert.equal(c.Config.Labels['cloudtolocalllm.stack'], blueName);
      assert.deepEqual(c.Config.Healthcheck.Test, ['NONE'], 'the engine health check is off by default');
      assert.equal((await inspect('network', networkName(s.userHash, blueName))).Labels['cloudtolocalllm.stack'], blueName);

      // Each sees its own; the server without a stack sees neither.
      assert.deepEqual((await blue.list()).map((p) => p.id), [pb.id]);
      assert.deepEqual((await green.list()).map((p) => p.id), [pg.id]);
      assert.ok(!(await runtime.list()).some((p) => p.id === pb.id || p.id === pg.id));

      // A leftover of green's is pruned by green only.
      const orphan = spec('stacks-orphan');
      await green.subnets.withSubnet((candidate) => docker.createNetwork(networkCreateOptions(orphan.userHash, candidate, greenName)));
      await blue.pruneOrphans();
      await runtime.pruneOrphans();
      assert.ok(await inspect('network', networkName(orphan.userHash, greenName)), 'another stack\'s leftover is not ours to prune');
      await green.pruneOrphans();
      assert.equal(await inspect('network', networkName(orphan.userHash, greenName)), undefined);

      // Stopping the user on blue leaves green's proxy running.
      await blue.stop(s.userHash);
      assert.equal(await inspect('container', pb.id), undefined);
      assert.equal((await get(`${pg.endpoint}/health`)).status, 200);

      // Green's proxy dying is green's news only (blue and the stackless runtime watch the same
      // engine and would have heard of it by the time green did, plus a margin).
      const greenHeard = new Promise<void>((resolve) => green.once('exit', () => resolve()));
      await run('docker', ['kill', pg.id]);
      await greenHeard;
      await sleep(500);
      assert.deepEqual(exits, { blue: [], green: [s.userHash], none: [] });
      await green.stop(s.userHash);
      assert.deepEqual(await leftovers().then((l) => [...l.containers, ...l.networks].filter((x) => x.includes(s.userHash))), []);
    } finally {
      runtime.off('exit', noStack);
      await Promise.all([blue.stop(s.userHash), green.stop(s.userHash)]).catch(() => undefined);
      await Promise.all([blue.close(), green.close()]);
    }
  });

  test("spares: a start takes one by a rename and the pool refills; a dead spare is replaced and nobody's news; a restarted server removes only its own old spares; close() removes the rest", async () => {
    const stack = `spares-${RUN}`;
    const byStack = async (): Promise<{ containers: string[]; networks: string[] }> => ({
      containers: (await run('docker', ['ps', '-a', '--filter', `label=cloudtolocalllm.stack=${stack}`, '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean).sort(),
      networks: (await run('docker', ['network', 'ls', '--filter', `label=cloudtolocalllm.stack=${stack}`, '--format', '{{.Name}}'])).stdout.split('\n').filter(Boolean).sort(),
    });
    const until = async (what: string, ok: () => Promise<boolean> | boolean): Promise<void> => {
      const deadline = Date.now() + 90_000;
      while (!(await ok())) {
        if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; on the engine: ${JSON.stringify(await byStack())}`);
        await sleep(100);
      }
    };
    const make = (): DockerRuntime => new DockerRuntime({ docker, image: IMAGE, stack, spares: 2, startTimeoutMs: 90_000, firewall: FIREWALL_MODE });
    const first = make();
    const again = make();
    const exits: string[] = [];
    first.on('exit', (hash) => exits.push(hash));
    const s = spec('spare-user');
    try {
      first.fillSpares();
      await until('two spares', () => first.sparesReady === 2);
      const spares = (await byStack()).containers;
      assert.equal(spares.length, 2);
      assert.deepEqual(await first.list(), [], 'a spare is nobody\'s proxy');

      const proxy = await first.start(s);
      assert.equal(proxy.id, containerName(s.userHash, stack));
      assert.ok(spares.includes(`ctll-${stack}-proxy-${(await inspect('container', proxy.id)).Config.Labels[LABEL_OWNER]}`), 'the user\'s container is one of the spares, renamed');
      assert.ok(proxy.startPhases?.claim !== undefined, JSON.stringify(proxy.startPhases));
      assert.equal(proxy.startPhases?.network, undefined, 'no network was made for this start');
      // The spare's own secret is the one it takes; the one in the spec would not open it.
      assert.notEqual(proxy.secret, s.secret);
      assert.equal((await get(`${proxy.endpoint}/api/tags`, { authorization: `Bearer ${s.secret}` })).status, 401);
      assert.notEqual((await get(`${proxy.endpoint}/api/tags`, { authorization: `Bearer ${proxy.secret!}` })).status, 401);
      assert.deepEqual((await first.list()).map((p) => [p.id, p.userHash, p.secret, p.endpoint]), [[proxy.id, s.userHash, proxy.secret, proxy.endpoint]]);
      await until('the pool refilled', () => first.sparesReady === 2);

      // Four users at once with two spares: two take the ready ones, one waits for the spare being
      // made meanwhile, and the fourth makes its own rather than queue behind the pool.
      const crowd = ['a', 'b', 'c', 'd'].map((x) => spec(`spare-crowd-${x}`));
      const started = await Promise.all(crowd.map((c) => first.start(c)));
      const made = started.filter((p) => p.startPhases?.network !== undefined).length;
      const claimed = started.filter((p) => p.startPhases?.claim !== undefined && p.startPhases.network === undefined).length;
      assert.deepEqual({ claimed, made }, { claimed: 3, made: 1 }, JSON.stringify(started.map((p) => p.startPhases)));
      for (const c of crowd) await first.stop(c.userHash);
      await until('the pool refilled after the crowd', async () => first.sparesReady === 2 && (await byStack()).containers.length === 3);

      // A spare killed from outside: replaced, its network removed, and no user hears of it.
      const spare = (await byStack()).containers.find((n) => n !== proxy.id)!;
      await run('docker', ['kill', spare]);
      await until('the killed spare replaced and cleaned up', async () => {
        const now = await byStack();
        return first.sparesReady === 2 && !now.containers.includes(spare) && now.containers.length === 3 && now.networks.length === 3;
      });
      // The claimed one killed: that is the user's news.
      await run('docker', ['kill', proxy.id]);
      await until('the user told of the exit', () => exits.length > 0);
      assert.deepEqual(exits, [s.userHash]);
      await first.stop(s.userHash);
      assert.equal((await byStack()).networks.length, 2, 'stop removed the network the user\'s container had joined (a spare\'s name)');

      await first.close();
      assert.deepEqual(await byStack(), { containers: [], networks: [] }, 'close() removed the spares');

      // What a crash leaves: a running spare of this server's (holder "single") and one of another
      // server's on the same engine. The restarted server removes its own only.
      const leftover = async (holder: string): Promise<string> => {
        const id = randomBytes(32).toString('hex');
        const subnet = await again.subnets.withSubnet(async (candidate) => {
          await docker.createNetwork(networkCreateOptions(id, candidate, stack));
          return candidate;
        });
        const c = await docker.createContainer(containerCreateOptions({ userHash: id, secret: randomBytes(24).toString('hex'), image: IMAGE, subnet, limits: again.limits, stack, spareOf: holder }));
        await c.start();
        return containerName(id, stack);
      };
      await leftover('single');
      const others = await leftover('10.0.0.2:9443');
      assert.deepEqual(await again.pruneOrphans(), { containers: 1, networks: 1 });
      assert.deepEqual((await byStack()).containers, [others]);
      assert.deepEqual(await again.list(), [], 'another server\'s spare is nobody\'s proxy here either');
    } finally {
      await Promise.all([first.close(), again.close()]).catch(() => undefined);
      const left = await byStack();
      if (left.containers.length) await run('docker', ['rm', '-f', ...left.containers]).catch(() => undefined);
      for (const n of left.networks) await run('docker', ['network', 'rm', n]).catch(() => undefined);
    }
  });

  test('40 users at once: distinct non-overlapping subnets beyond Docker’s ~29 pools, all healthy, no leftovers', { timeout: 150_000 }, async (t) => {
    const specs = Array.from({ length: 40 }, (_, i) => spec(`many-${i}`));
    let started = performance.now();
    const proxies = await Promise.all(specs.map((s) => runtime.start(s)));
    t.diagnostic(`40 concurrent starts: ${Math.round(performance.now() - started)} ms`);

    const subnets = await Promise.all(
      specs.map(async (s) => (await docker.getNetwork(networkName(s.userHash)).inspect()).IPAM!.Config![0]!.Subnet as string),
    );
    assert.equal(new Set(subnets).size, 40);
    const mine = new Set(subnets);
    const others = (await docker.listNetworks())
      .flatMap((n) => (n.IPAM?.Config ?? []).map((c) => (c as { Subnet?: string }).Subnet))
      .filter((s): s is string => !!s && !s.includes(':') && !mine.has(s));
    for (const [i, a] of subnets.entries()) {
      for (const b of subnets.slice(i + 1)) assert.ok(!overlaps(parseCidr(a), parseCidr(b)), `${a} overlaps ${b}`);
      for (const b of others) assert.ok(!overlaps(parseCidr(a), parseCidr(b, { strict: false })), `${a} overlaps foreign ${b}`);
    }
    const health = await Promise.all(proxies.map((p) => get(`${p.endpoint}/health`).then((r) => r.status)));
    assert.deepEqual(health, Array(40).fill(200));

    started = performance.now();
    await Promise.all(specs.map((s) => runtime.stop(s.userHash)));
    t.diagnostic(`40 concurrent stops: ${Math.round(performance.now() - started)} ms`);
    const left = await leftovers();
    assert.deepEqual(
      [...left.containers, ...left.networks].filter((x) => specs.some((s) => x.includes(s.userHash))),
      [],
    );
    await sleep(300);
    assert.deepEqual(exits.filter(([h]) => specs.some((s) => s.userHash === h)), [], 'stop() reported as an exit');
  });

  test('the isolation firewall: installed before the first start, one jump per parent chain however often ensured, repaired', { skip: noFirewall }, async (t) => {
    const families = FIREWALL_FAMILIES.filter((f) => f.command === 'iptables' || existsSync('/proc/net/if_inet6'));
    if (families.length > 1 && (await run('ip6tables', ['-w', '10', '-S', 'INPUT']).catch(() => undefined)) === undefined) families.pop();
    const expectInstalled = async (when: string): Promise<void> => {
      for (const f of families) {
        assert.deepEqual(await firewallState(f.command), { INPUT: [1], 'DOCKER-USER': [1], chain: f.chain }, `${f.command}, ${when}`);
      }
    };

    assert.deepEqual(await removeIsolationFirewall(), { ok: true });
    for (const f of families) assert.deepEqual(await firewallState(f.command), { INPUT: [], 'DOCKER-USER': [], chain: undefined }, `${f.command} after remove`);
    // A new runtime installs it before its first start (and not at construction).
    const fresh = new DockerRuntime({ docker, image: IMAGE, firewall: 'enforce' });
    const s = spec('firewall-first-start');
    try {
      assert.deepEqual(await firewallState('iptables'), { INPUT: [], 'DOCKER-USER': [], chain: undefined }, 'installed without a start');
      await fresh.start(s);
      await expectInstalled('after the first start');
    } finally {
      await fresh.stop(s.userHash);
      await fresh.close();
    }

    for (let i = 0; i < 3; i++) assert.deepEqual(await ensureIsolationFirewall(), { ok: true });
    await expectInstalled('after ensuring 3 more times');
    const concurrent = await Promise.all([ensureIsolationFirewall(), ensureIsolationFirewall(), ensureIsolationFirewall()]);
    assert.deepEqual(concurrent, [{ ok: true }, { ok: true }, { ok: true }]);
    await expectInstalled('after 3 concurrent ensures');

    // Tampered with: a duplicate jump, the DOCKER-USER jump moved below Docker's RETURN (where it
    // does nothing), a stray rule in our chain. Repaired: one jump, first, and our rules only.
    const jump = ['-i', 'ctll-+', '-j', ISOLATION_CHAIN];
    for (const f of families) {
      await run(f.command, ['-w', '10', '-A', 'INPUT', ...jump]);
      await run(f.command, ['-w', '10', '-D', 'DOCKER-USER', ...jump]);
      await run(f.command, ['-w', '10', '-A', 'DOCKER-USER', '-j', 'RETURN']);
      await run(f.command, ['-w', '10', '-A', 'DOCKER-USER', ...jump]);
      await run(f.command, ['-w', '10', '-A', ISOLATION_CHAIN, '-p', 'udp', '-j', 'DROP']);
      const tampered = await firewallState(f.command);
      assert.equal(tampered.INPUT.length, 2);
      assert.ok(tampered['DOCKER-USER'][0]! > 1);
    }
    assert.deepEqual(await ensureIsolationFirewall(), { ok: true });
    await expectInstalled('after repairing');
    for (const f of families) await run(f.command, ['-w', '10', '-D', 'DOCKER-USER', '-j', 'RETURN']).catch(() => undefined);

    const started = performance.now();
    assert.deepEqual(await ensureIsolationFirewall(), { ok: true });
    t.diagnostic(`families: ${families.map((f) => f.command).join(', ')}; ensure when already installed: ${Math.round(performance.now() - started)} ms`);
    t.diagnostic(`iptables -S ${ISOLATION_CHAIN}: ${(await firewallState('iptables')).chain?.join(' | ')}`);
  });

  test('isolation, seen from inside a proxy container: host and others refused at once, host → proxy still works', { skip: noFirewall }, async (t) => {
    const a = spec('iso-a');
    const b = spec('iso-b');
    const [pa, pb] = await Promise.all([runtime.start(a), runtime.start(b)]);
    const subnetOf = async (s: ProxySpec) =>
      (await docker.getNetwork(networkName(s.userHash)).inspect()).IPAM!.Config![0]!.Subnet as string;
    const gatewayA = gatewayAddress(await subnetOf(a));
    const gatewayB = gatewayAddress(await subnetOf(b));
    // More addresses of this host: docker0's, and the first other interface's (its own address).
    // (docker0 is left out of os.networkInterfaces() while no container uses it: ask `ip`.)
    const ipv4Of = (name: string) => os.networkInterfaces()[name]?.find((i) => i.family === 'IPv4' && !i.internal)?.address;
    const docker0 = await run('ip', ['-4', '-o', 'addr', 'show', 'dev', 'docker0']).then(
      ({ stdout }) => /\binet (\d+\.\d+\.\d+\.\d+)\//.exec(stdout)?.[1],
      () => undefined,
    );
    const hostInterface = Object.keys(os.networkInterfaces()).find((n) => !/^(lo|docker\d|ctll-|veth|br-)/.test(n) && ipv4Of(n));
    // Two servers on the host: one wrongly listening on all interfaces, one on loopback only.
    let reachedAll = 0;
    const allInterfaces = net.createServer((socket) => {
      reachedAll++;
      socket.end();
    });
    const loopbackOnly = net.createServer((socket) => socket.end());
    allInterfaces.listen(0, '0.0.0.0');
    loopbackOnly.listen(0, '127.0.0.1');
    await Promise.all([once(allInterfaces, 'listening'), once(loopbackOnly, 'listening')]);
    const allPort = (allInterfaces.address() as net.AddressInfo).port;
    const loPort = (loopbackOnly.address() as net.AddressInfo).port;
    const host: Probe[] = [
      { name: 'host server on 0.0.0.0, via its own gateway', host: gatewayA, port: allPort },
      { name: "host server on 0.0.0.0, via B's gateway", host: gatewayB, port: allPort },
      ...(docker0 ? [{ name: 'host server on 0.0.0.0, via docker0', host: docker0, port: allPort }] : []),
      ...(hostInterface ? [{ name: `host server on 0.0.0.0, via ${hostInterface}`, host: ipv4Of(hostInterface)!, port: allPort }] : []),
      { name: 'host server on 127.0.0.1, via its own gateway', host: gatewayA, port: loPort },
    ];
    const beyond: Probe[] = [
      { name: "user B's proxy", host: new URL(pb.endpoint).hostname, port: 8080 },
      { name: 'unroutable 10.255.255.1', host: '10.255.255.1', port: 80 },
      { name: 'TEST-NET-1 192.0.2.1', host: '192.0.2.1', port: 80 },
    ];
    try {
      const results = await connectFrom(
        containerName(a.userHash),
        [
          { name: 'control: its own proxy on 127.0.0.1:8080', host: '127.0.0.1', port: 8080 },
          ...beyond,
          ...host,
          { name: 'its own 127.0.0.1 (not the host)', host: '127.0.0.1', port: loPort },
        ],
        3000,
      );
      for (const r of results) t.diagnostic(`from A (${new URL(pa.endpoint).hostname}) to ${r.name} (${r.target}): ${r.result} after ${r.ms} ms`);
      const result = (name: string) => results.find((r) => r.name === name)!;
      assert.equal(result('control: its own proxy on 127.0.0.1:8080').result, 'connected', 'the probe itself works');
      for (const r of results.filter((r) => !r.name.startsWith('control'))) assert.notEqual(r.result, 'connected', r.name);
      assert.equal(reachedAll, 0, 'the host server on 0.0.0.0 accepted a connection from a proxy');
      // Refused, not dropped: a rejected connection fails with an error code; a dropped one
      // only ends when the probe's 3 s timeout gives up ('timeout'), whatever the machine's load.
      for (const p of [...host, ...beyond]) {
        const r = result(p.name);
        assert.ok(FAST_FAILURES.includes(r.result), `${p.name}: ${r.result} after ${r.ms} ms, not a refusal`);
      }
      // The host's own addresses say "nothing listens here", whatever does.
      for (const p of host) assert.equal(result(p.name).result, 'ECONNREFUSED', p.name);
      // Host → proxy: connections the host opens, and their replies, still pass.
      for (const p of [pa, pb]) assert.equal((await get(`${p.endpoint}/health`)).status, 200, `${p.endpoint}/health`);
    } finally {
      allInterfaces.close();
      loopbackOnly.close();
      await Promise.all([runtime.stop(a.userHash), runtime.stop(b.userHash)]);
    }
  });

  test('a full relay through the container: bridge WebSocket in, Ollama requests relayed and streamed', async (t) => {
    const s = spec('relay');
    // A stand-in for the user's Ollama on this host's loopback; the bridge talks to it.
    const ollama = http.createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/api/tags') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ models: [{ name: 'isolation-test:latest', model: 'isolation-test:latest', size: 1 }] }));
      } else if (req.method === 'GET' && req.url === '/api/version') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"version":"0.0.0-test"}');
      } else if (req.method === 'POST' && req.url === '/api/generate') {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        const words = ['one ', 'two ', 'three'];
        const next = (i: number): void => {
          if (i === words.length) return void res.end(JSON.stringify({ model: 'isolation-test:latest', response: '', done: true }) + '\n');
          res.write(JSON.stringify({ model: 'isolation-test:latest', response: words[i], done: false }) + '\n');
          setTimeout(() => next(i + 1), 30);
        };
        next(0);
      } else {
        res.writeHead(404).end();
      }
    });
    ollama.listen(0, '127.0.0.1');
    await once(ollama, 'listening');
    const proxy = await runtime.start(s);
    const bridge = new Bridge({
      proxyUrl: `${proxy.endpoint}${BRIDGE_PATH}`,
      getToken: () => s.secret,
      ollamaUrl: `http://127.0.0.1:${(ollama.address() as net.AddressInfo).port}`,
    });
    const auth = { authorization: `Bearer ${s.secret}` };
    try {
      const started = performance.now();
      bridge.start();
      // Until the proxy says so (the test's timeout bounds it); a refusal the bridge gives up on ends it at once.
      for (;;) {
        const health = JSON.parse((await get(`${proxy.endpoint}/health`)).body) as { bridgeConnected?: boolean };
        if (health.bridgeConnected) break;
        const status = bridge.status;
        assert.ok(!(status.state === 'error' && status.retryInMs === undefined), `the bridge gave up: ${JSON.stringify(status)}`);
        await sleep(100);
      }
      t.diagnostic(`bridge connected to the proxy in the container after ${Math.round(performance.now() - started)} ms`);
      const tags = await fetch(`${proxy.endpoint}/api/tags`, { headers: auth });
      assert.equal(tags.status, 200);
      assert.deepEqual(((await tags.json()) as { models: Array<{ name: string }> }).models.map((m) => m.name), ['isolation-test:latest']);
      const generated = await fetch(`${proxy.endpoint}/api/generate`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'isolation-test:latest', prompt: 'hello' }),
      });
      assert.equal(generated.status, 200);
      const lines = (await generated.text()).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { response: string; done: boolean });
      assert.equal(lines.map((l) => l.response).join(''), 'one two three');
      assert.equal(lines.at(-1)?.done, true);
    } finally {
      await bridge.stop();
      ollama.close();
      await runtime.stop(s.userHash);
    }
  });

  test('firewall modes: enforce is the default, an unknown mode is refused at construction', async () => {
    const modes: string[] = [];
    for (const option of [undefined, 'enforce', 'warn', 'off'] as const) {
      const r = new DockerRuntime({ docker, ...(option ? { firewall: option } : {}) });
      modes.push(r.firewallMode);
      await r.close();
    }
    assert.deepEqual(modes, ['enforce', 'enforce', 'warn', 'off']);
    assert.throws(() => new DockerRuntime({ docker, firewall: 'bogus' as 'off' }), /^Error: DockerRuntime option firewall is "bogus"; use enforce, warn, off$/);
  });

  test('firewall modes where iptables cannot run: enforce refuses to start, warn starts anyway, off never asks', { skip: asRoot }, async () => {
    // The three modes where iptables cannot be run: as an unprivileged user (nobody), who cannot
    // reach the engine either, so nothing gets created whatever a mode lets through.
    const s = spec('firewall-modes');
    const script = `
      const { DockerRuntime } = await import(${JSON.stringify(new URL('./docker-runtime.ts', import.meta.url).href)});
      const { createLogger } = await import(${JSON.stringify(new URL('../../log.ts', import.meta.url).href)});
      const out = {};
      for (const mode of ['enforce', 'warn', 'off']) {
        const logs = [];
        const runtime = new DockerRuntime({ firewall: mode, log: createLogger({}, 'info', (line) => logs.push(JSON.parse(line))) });
        try {
          await runtime.start(${JSON.stringify(s)});
          out[mode] = { started: true };
        } catch (e) {
          out[mode] = { error: e.message, logs: logs.filter((l) => l.msg.includes('firewall')).map((l) => l.msg) };
        }
        await runtime.close();
      }
      process.stdout.write(JSON.stringify(out));`;
    const { stdout } = await asNobody(script);
    const out = JSON.parse(stdout) as Record<'enforce' | 'warn' | 'off', { error?: string; logs?: string[]; started?: boolean }>;
    assert.match(
      out.enforce.error ?? '',
      /^could not start the streaming proxy for user [0-9a-f]{12}: the host firewall that isolates proxies could not be installed \(.*(Permission denied|must be root|not permitted|not installed).*\); run the server as root .*CTLL_FIREWALL=warn/,
    );
    assert.doesNotMatch(out.enforce.error ?? '', /docker\.sock/, 'enforce went on to the engine');
    assert.ok(out.warn.logs?.some((m) => m.startsWith('isolation firewall NOT installed')), JSON.stringify(out.warn));
    assert.match(out.warn.error ?? '', /docker\.sock/, 'warn went on to the engine (which nobody may use)');
    assert.deepEqual(out.off.logs, [], 'off said something about the firewall');
    assert.match(out.off.error ?? '', /docker\.sock/, 'off went on to the engine (which nobody may use)');
  });

  test("with the keeper's status file (the deployed api-backend): no iptables, no privilege; a start goes on only while the file confirms the rules", { skip: asRoot }, async (t) => {
    // As nobody: iptables cannot run, so a start that gets past the firewall check to the engine
    // (whose socket nobody may not use) shows the check needed no privilege.
    const dir = mkdtempSync(join(os.tmpdir(), 'ctll-firewall-status-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    chmodSync(dir, 0o755);
    const file = join(dir, 'status.json');
    const s = spec('firewall-status-file');
    const script = `
      const { DockerRuntime } = await import(${JSON.stringify(new URL('./docker-runtime.ts', import.meta.url).href)});
      const { createLogger } = await import(${JSON.stringify(new URL('../../log.ts', import.meta.url).href)});
      const logs = [];
      const runtime = new DockerRuntime({ firewall: 'enforce', firewallStatusFile: ${JSON.stringify(file)}, log: createLogger({}, 'info', (line) => logs.push(JSON.parse(line))) });
      let out;
      try {
        await runtime.start(${JSON.stringify(s)});
        out = { started: true };
      } catch (e) {
        out = { error: e.message, logs: logs.map((l) => l.msg).filter((m) => m.includes('firewall')) };
      }
      await runtime.close();
      process.stdout.write(JSON.stringify(out));`;
    const attempt = async (): Promise<{ error?: string; logs?: string[] }> => {
      const { stdout } = await asNobody(script);
      return JSON.parse(stdout) as { error?: string; logs?: string[] };
    };
    const missing = await attempt();
    assert.match(missing.error ?? '', /the host firewall that isolates proxies is not confirmed \(the isolation firewall's keeper has not written .*status\.json yet\); it is installed and kept by the isolation-firewall service/);
    assert.doesNotMatch(missing.error ?? '', /docker\.sock|iptables/, 'went on to the engine, or ran iptables');
    writeFirewallStatus(file, { ok: false, error: 'iptables: Permission denied' }, 60_000);
    assert.match((await attempt()).error ?? '', /not confirmed \(the isolation firewall's keeper could not install the rules: iptables: Permission denied\)/);
    writeFirewallStatus(file, { ok: true }, 60_000, Date.now() - 120_000);
    assert.match((await attempt()).error ?? '', /not confirmed \(the isolation firewall's keeper last confirmed the rules 1[2-9]\d s ago/);
    writeFirewallStatus(file, { ok: true }, 60_000);
    const confirmed = await attempt();
    assert.match(confirmed.error ?? '', /docker\.sock/, 'a confirmed firewall did not let the start go on to the engine');
    assert.deepEqual(confirmed.logs, [], 'the runtime said something about the firewall although it was confirmed');
  });
});
