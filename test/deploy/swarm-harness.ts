/**
 * Three Docker engines on this machine, joined into one swarm (shared/ENVIRONMENT.md, "Several
 * Docker engines on one machine"): one network namespace per node with a veth into a bridge of
 * the root namespace (10.251.0.0/24 by default: .1 the bridge, .2-.4 the nodes), a FORWARD rule
 * so the nodes reach each other, and per node a dockerd started with nsenter (its own data-root,
 * exec-root, socket and pid file). Everything is named after one prefix, and `remove()` takes it
 * all down in reverse, whatever was made before a failure.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, stopChild } from './deploy-harness.js';

export interface SwarmNode {
  name: string;
  address: string;
  socket: string;
  /** `docker -H <this node>` */
  docker(...args: string[]): Promise<string>;
}

export interface TestSwarm {
  nodes: SwarmNode[];
  bridgeAddress: string;
  /** A folder where `<node id>.sock` links to each node's engine socket (for a mount template). */
  socketDir: string;
  /**
   * Makes 127.0.0.1:port of the root namespace reachable at 127.0.0.1:port inside every node
   * (a TCP relay in each node's namespace to the bridge address, and one there to loopback): the
   * embedded issuer speaks http, which the server allows only on loopback.
   */
  shareLoopbackPort(port: number): Promise<void>;
  /**
   * A machine's loss, as far as its engine goes: SIGKILL at once to the node's dockerd, its
   * containerd and shims, and every process of every container it ran (their cgroups); then
   * what a reboot clears (the engine's mounts and its exec-root, a tmpfs on a real machine).
   * The node's network namespace stays, as a rebooted machine's address does. Resolves with how
   * many processes were killed.
   */
  killEngine(node: SwarmNode): Promise<number>;
  /** Starts a killed node's engine again (the same data-root: the machine rebooted). */
  startEngine(node: SwarmNode): Promise<void>;
  remove(): Promise<void>;
}

/** A TCP relay from LISTEN_HOST:PORT to TARGET_HOST:PORT, as the body of `node -e`. */
const RELAY = `const net = require('node:net');
const [listenHost, port, target] = process.argv.slice(1);
net.createServer((c) => { const u = net.connect(Number(port), target); c.pipe(u).pipe(c); c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); })
  .listen(Number(port), listenHost, () => process.stdout.write('listening\\n'));`;

/** What this machine lacks to run the swarm, or undefined. */
export async function swarmPrerequisites(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root (network namespaces, a bridge and dockerd need it)';
  for (const bin of ['ip', 'iptables', 'nsenter', 'dockerd', 'docker']) {
    if (!(await run('sh', ['-c', `command -v ${bin}`]).then(() => true, () => false))) return `${bin} is not installed`;
  }
  return undefined;
}

const sh = async (cmd: string, args: string[]): Promise<string> => (await run(cmd, args, { maxBuffer: 64 << 20 })).stdout.trim();

/** Lazily unmounts `dir` and everything mounted under it, deepest first. */
const unmountUnder = (dir: string): Promise<unknown> =>
  sh('sh', ['-c', `awk '$2 == "${dir}" || index($2, "${dir}/") == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l`]).catch(() => undefined);

export async function createSwarm(options: { prefix: string; subnet?: string; size?: number; log?: (line: string) => void }): Promise<TestSwarm> {
  const { prefix } = options;
  const base = (options.subnet ?? '10.251.0').replace(/\.0\/24$/, '');
  const size = options.size ?? 3;
  const log = options.log ?? (() => undefined);
  const bridge = `${prefix}br`;
  const bridgeAddress = `${base}.1`;
  const socketDir = `/run/${prefix}-sockets`;
  const undo: Array<() => Promise<unknown>> = [];
  const nodes: SwarmNode[] = [];
  const daemons = new Map<string, () => Promise<void>>();

  const remove = async (): Promise<void> => {
    while (undo.length) await undo.pop()!().catch((e: Error) => log(`cleanup: ${e.message}`));
  };

  const startEngine = async (node: SwarmNode): Promise<void> => {
    const ns = node.name;
    const child = spawn(
      'nsenter',
      [`--net=/run/netns/${ns}`, 'dockerd', '--data-root', `/var/lib/${ns}`, '--exec-root', `/run/${ns}`, '-H', `unix://${node.socket}`, '--pidfile', `/run/${ns}.pid`, '--log-level', 'warn'],
      { stdio: 'ignore', detached: false },
    );
    daemons.set(ns, () => stopChild(child, 'SIGTERM', 15_000));
    const deadline = Date.now() + 60_000;
    while (!(await node.docker('version', '--format', '{{.Server.Version}}').then(() => true, () => false))) {
      if (child.exitCode !== null) throw new Error(`dockerd of ${ns} exited with ${child.exitCode}`);
      if (Date.now() > deadline) throw new Error(`dockerd of ${ns} did not answer within 60 s`);
      await sleep(250);
    }
  };

  try {
    await sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
    undo.push(() => sh('ip', ['link', 'del', bridge]));
    await sh('ip', ['addr', 'add', `${bridgeAddress}/24`, 'dev', bridge]);
    await sh('ip', ['link', 'set', bridge, 'up']);
    // Docker's FORWARD policy is DROP and bridged frames pass iptables: let the nodes talk.
    await sh('iptables', ['-I', 'FORWARD', '1', '-i', bridge, '-o', bridge, '-j', 'ACCEPT']);
    undo.push(() => sh('iptables', ['-D', 'FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT']));
    mkdirSync(socketDir, { recursive: true });
    undo.push(async () => rmSync(socketDir, { recursive: true, force: true }));

    for (let i = 0; i < size; i++) {
      const name = `${prefix}n${i + 1}`;
      const address = `${base}.${i + 2}`;
      const socket = `/run/${name}.sock`;
      const node: SwarmNode = { name, address, socket, docker: (...args) => sh('docker', ['-H', `unix://${socket}`, ...args]) };
      await sh('ip', ['netns', 'add', name]);
      undo.push(() => sh('ip', ['netns', 'del', name]));
      const veth = `${prefix}v${i + 1}`;
      await sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
      undo.push(() => sh('ip', ['link', 'del', veth]).catch(() => undefined));
      await sh('ip', ['link', 'set', veth, 'master', bridge, 'up']);
      const inNs = (...args: string[]): Promise<string> => sh('ip', ['-n', name, ...args]);
      await inNs('addr', 'add', `${address}/24`, 'dev', 'eth0');
      await inNs('link', 'set', 'eth0', 'up');
      await inNs('link', 'set', 'lo', 'up');
      await inNs('route', 'add', 'default', 'via', bridgeAddress);
      // Data and state directories go last in, first out: after the engine has stopped.
      undo.push(async () => {
        for (const dir of [`/var/lib/${name}`, `/run/${name}`]) {
          // Mounts an engine left behind (killed, or not stopped within its grace) would keep rm
          // from removing the folder: those under it, and the folder itself (a bind mount of its own).
          await unmountUnder(dir);
          rmSync(dir, { recursive: true, force: true });
        }
        rmSync(socket, { force: true });
        rmSync(`/run/${name}.pid`, { force: true });
      });
      undo.push(async () => {
        await node.docker('swarm', 'leave', '--force').catch(() => undefined);
        await daemons.get(name)?.();
      });
      await startEngine(node);
      nodes.push(node);
      log(`${name}: dockerd up at ${address}`);
    }

    const [first, ...rest] = nodes;
    await first!.docker('swarm', 'init', '--advertise-addr', first!.address);
    const token = await first!.docker('swarm', 'join-token', '-q', 'worker');
    await Promise.all(rest.map((n) => n.docker('swarm', 'join', '--token', token, '--advertise-addr', n.address, `${first!.address}:2377`)));
    for (const n of nodes) {
      const id = await n.docker('info', '--format', '{{.Swarm.NodeID}}');
      symlinkSync(n.socket, `${socketDir}/${id}.sock`);
    }
    log(`swarm of ${nodes.length} nodes`);
  } catch (e) {
    await remove();
    throw e;
  }

  const killEngine = async (node: SwarmNode): Promise<number> => {
    const ns = node.name;
    const pids = new Set<number>([Number(readFileSync(`/run/${ns}.pid`, 'utf8'))]);
    const ids = (await node.docker('ps', '-q', '--no-trunc')).split('\n').filter(Boolean);
    const mains = ids.length ? (await node.docker('inspect', '--format', '{{.State.Pid}}', ...ids)).split('\n').map(Number) : [];
    for (const main of mains.filter((p) => p > 0)) {
      // Every process of the container (its cgroup's), not just its first; cgroup v1 or v2.
      const lines = readFileSync(`/proc/${main}/cgroup`, 'utf8').split('\n');
      const v1 = lines.find((l) => l.split(':')[1] === 'pids');
      const v2 = lines.find((l) => l.startsWith('0::'));
      const file = v1 ? `/sys/fs/cgroup/pids${v1.split(':')[2]}/cgroup.procs` : v2 ? `/sys/fs/cgroup${v2.slice(3)}/cgroup.procs` : undefined;
      const procs = file ? readFileSync(file, 'utf8') : String(main);
      for (const p of procs.split('\n').filter(Boolean)) pids.add(Number(p));
    }
    // containerd and the shims name the engine's exec-root in their arguments.
    for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
      try {
        if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(`/run/${ns}/`)) pids.add(Number(entry));
      } catch {
        // gone meanwhile
      }
    }
    // Stopped first, all of them, so none reaps or restarts another before it dies too.
    const signal = (p: number, sig: NodeJS.Signals | 0): boolean => {
      try {
        process.kill(p, sig);
        return true;
      } catch {
        return false;
      }
    };
    for (const sig of ['SIGSTOP', 'SIGKILL'] as const) for (const p of pids) signal(p, sig);
    // A zombie is dead: only its parent's wait is missing.
    const running = (p: number): boolean => {
      try {
        return signal(p, 0) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 10_000;
    while ([...pids].some(running)) {
      if (Date.now() > deadline) throw new Error(`processes of ${ns}'s engine survived SIGKILL`);
      await sleep(50);
    }
    for (const dir of [`/run/${ns}`, `/var/lib/${ns}`]) await unmountUnder(dir);
    rmSync(`/run/${ns}`, { recursive: true, force: true });
    rmSync(node.socket, { force: true });
    log(`${ns}: engine killed (${pids.size} processes)`);
    return pids.size;
  };

  return {
    nodes,
    bridgeAddress,
    socketDir,
    remove,
    killEngine,
    startEngine: async (node) => {
      await startEngine(node);
      log(`${node.name}: dockerd started again`);
    },
    shareLoopbackPort: async (port) => {
      const relay = async (netns: string | undefined, listenHost: string, target: string): Promise<void> => {
        const argv = [process.execPath, '-e', RELAY, listenHost, String(port), target];
        const child = netns ? spawn('nsenter', [`--net=/run/netns/${netns}`, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
        undo.push(async () => {
          if (child.exitCode === null) child.kill('SIGKILL');
        });
        await new Promise<void>((resolve, reject) => {
          child.stdout!.once('data', () => resolve());
          child.once('exit', (code) => reject(new Error(`the relay ${listenHost}:${port} -> ${target} exited with ${code}`)));
        });
      };
      await relay(undefined, bridgeAddress, '127.0.0.1');
      await Promise.all(nodes.map((n) => relay(n.name, '127.0.0.1', bridgeAddress)));
    },
  };
}

/** Copies images from one engine into the others (`docker save | docker load`). */
export async function copyImages(from: SwarmNode, to: SwarmNode[], images: string[], file: string): Promise<void> {
  await run('sh', ['-c', `docker -H unix://${from.socket} save ${images.join(' ')} > ${file}`]);
  try {
    await Promise.all(to.map((n) => run('sh', ['-c', `docker -H unix://${n.socket} load -q < ${file}`])));
  } finally {
    rmSync(file, { force: true });
  }
}
