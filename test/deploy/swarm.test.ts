/**
 * The stack on a real Docker Swarm of three engines on this machine (test/deploy/swarm-harness.ts),
 * deployed as an operator does it: scripts/deploy/deploy-multi-container.sh --swarm --build
 * --self-signed builds the offline images on the manager's engine, which are then loaded into the
 * other two; `--swarm` deploys server/deploy/docker-stack.yml. One swarm for every case (heavy
 * once). Sign-in: one embedded issuer run by the test on the nodes' bridge, verified by every
 * node as it would verify Auth0.
 *
 * Then one node's engine is killed as a machine's loss would (test/deploy/swarm-harness.ts's
 * killEngine): its users are served again through the other edges once the survivors' probes
 * drop it (server/src/cluster/peer-liveness.ts), and it comes back, taking the new users.
 *
 * Also, without a swarm: the script's refusals (this machine's own engine is no swarm manager;
 * the cluster CA missing) and that --dry-run deploys nothing.
 *
 * Not root, or no dockerd/ip/iptables/nsenter: skipped with the reason, except in CI (CI=true).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_AUDIENCE } from '@cloudtolocalllm/server/config';
import { startEmbeddedIssuer, type EmbeddedIssuer } from '@cloudtolocalllm/server/issuer/embedded-issuer';
import { expectedText, OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { IN_CI, ROOT, run, startBridgeProcess, which, type BridgeProcess } from './deploy-harness.js';
import { copyImages, createSwarm, swarmPrerequisites, type TestSwarm } from './swarm-harness.js';

const DEPLOY = join(ROOT, 'scripts/deploy/deploy-multi-container.sh');
const missing = (await swarmPrerequisites()) ?? (which('openssl') ? undefined : 'openssl is not installed');
if (missing && IN_CI) test('a swarm of three engines can run here (CI machines must allow it)', () => assert.fail(missing));
const skip = missing ? `${missing}; CI=true makes this a failure` : false;

const IMAGES = ['cloudtolocalllm/api-backend:local', 'cloudtolocalllm/nginx:local', 'cloudtolocalllm/streaming-proxy:local'];

interface Deployed {
  stdout: string;
  code: number;
}
async function deploy(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 900_000): Promise<Deployed> {
  try {
    const r = await run(DEPLOY, args, { cwd: ROOT, timeout: timeoutMs, maxBuffer: 32 << 20, env: { ...process.env, NO_COLOR: '1', ...env } });
    return { stdout: r.stdout + r.stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number };
    return { stdout: `${err.stdout ?? ''}${err.stderr ?? ''}`, code: typeof err.code === 'number' ? err.code : 1 };
  }
}

function writeEnv(file: string, lines: string[]): void {
  writeFileSync(file, [...lines, ''].join('\n'));
}

describe('deploy-multi-container.sh --swarm refuses what is wrong', { skip: which('docker') ? false : 'no docker CLI' }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ctll-swarm-refusals-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an engine that is not a swarm manager, named as such, and nothing deployed', async () => {
    const envFile = join(dir, 'env');
    writeEnv(envFile, ['DOMAIN=localhost', `CTLL_STATE_DIR=${join(dir, 'state')}`, 'CTLL_STACK_NAME=ctll-swarm-refusal']);
    // This machine's own engine is in no swarm (other tests share it; nothing is changed on it).
    const state = (await run('docker', ['info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout.trim();
    if (state !== 'inactive') return assert.fail(`this test needs the host engine outside any swarm; it is "${state}"`);
    for (const extra of [[], ['--down'], ['--dry-run']]) {
      const r = await deploy(['--swarm', '--env-file', envFile, ...extra], {});
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, /this engine is not part of a swarm \(Swarm: inactive\): docker swarm init/);
    }
  });
});

describe('the stack on a swarm of three engines', { skip, concurrency: false }, () => {
  const id = randomBytes(2).toString('hex');
  const prefix = `csw${id}`;
  const stack = `ctll-swarm-${id}`;
  let swarm: TestSwarm | undefined;
  let dir: string;
  let envFile: string;
  let issuer: EmbeddedIssuer;
  let env: NodeJS.ProcessEnv;
  const ports = { https: 18443, http: 18080, health: 18088, api: 18081, cluster: 18444 };
  let deployed: Deployed;
  let dryRun: Deployed;
  let stacksAfterDryRun = '';
  let deployMs = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctll-swarm-'));
    chmodSync(dir, 0o755);
    swarm = await createSwarm({ prefix, log: (l) => process.stderr.write(`swarm: ${l}\n`) });
    const manager = swarm.nodes[0]!;
    issuer = await startEmbeddedIssuer({ audience: DEFAULT_AUDIENCE });
    await swarm.shareLoopbackPort(Number(new URL(issuer.issuer).port));
    envFile = join(dir, 'env');
    writeEnv(envFile, [
      'DOMAIN=localhost',
      `HTTPS_PORT=${ports.https}`,
      `HTTP_PORT=${ports.http}`,
      `NGINX_HEALTH_PORT=${ports.health}`,
      `PORT=${ports.api}`,
      `CTLL_CLUSTER_PORT=${ports.cluster}`,
      'CTLL_CLUSTER_INTERVAL_MS=500',
      `CTLL_STACK_NAME=${stack}`,
      `CTLL_STATE_DIR=${join(dir, 'state')}`,
      'CTLL_SUBNET_RANGE=10.234.0.0/16',
      'CTLL_FIREWALL=enforce',
      'CTLL_PROXY_STARTS_PER_MINUTE=600',
      // Spares as deployed (CTLL_PROXY_SPARES unset: 2 per node): each node's api-backend keeps
      // its own, and a user's start on a node takes one of that node's.
      `AUTH0_DOMAIN=${issuer.issuer}`,
      `AUTH0_ISSUER=${issuer.issuer}`,
      `AUTH0_JWKS_URI=${issuer.jwksUri}`,
      `AUTH0_AUDIENCE=${DEFAULT_AUDIENCE}`,
      `AUTH0_DESKTOP_CLIENT_ID=${issuer.desktopClientId}`,
      // Each node's own engine socket, by node id (a mount template; /var/run/docker.sock on a real node).
      `DOCKER_SOCKET=${swarm.socketDir}/{{.Node.ID}}.sock`,
      'METRICS_TOKEN=',
    ]);
    env = { DOCKER_HOST: `unix://${manager.socket}`, CTLL_SYSCTL_FILE: join(dir, 'sysctl.conf'), CTLL_TUNE_KERNEL: '0', CTLL_DEPLOY_WAIT_SECONDS: '180' };
    // The cluster CA first missing: refused, naming the script that makes it.
    const noCa = await deploy(['--swarm', '--env-file', envFile, '--self-signed', '--dry-run'], env);
    assert.equal(noCa.code, 1, noCa.stdout);
    assert.match(noCa.stdout, /the cluster CA is missing in .*cluster-ca \(ca\.pem node\.pem node-key\.pem\): make it with scripts\/deploy\/make-cluster-ca\.sh/);
    await run(join(ROOT, 'scripts/deploy/make-cluster-ca.sh'), [join(dir, 'state/cluster-ca')]);
    // Images built on the manager's engine, offline, then into the other engines.
    await run(join(ROOT, 'scripts/deploy/build-images.sh'), [], { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 32 << 20, timeout: 900_000 });
    await copyImages(manager, swarm.nodes.slice(1), IMAGES, join(dir, 'images.tar'));
    dryRun = await deploy(['--swarm', '--env-file', envFile, '--self-signed', '--dry-run'], env);
    stacksAfterDryRun = await manager.docker('stack', 'ls', '--format', '{{.Name}}');
    const started = Date.now();
    deployed = await deploy(['--swarm', '--env-file', envFile, '--self-signed'], env);
    deployMs = Date.now() - started;
  });

  after(async () => {
    if (swarm && envFile) {
      const down = await deploy(['--swarm', '--down', '--env-file', envFile], env, 300_000);
      if (down.code !== 0) process.stderr.write(`cleanup: --swarm --down failed:\n${down.stdout}\n`);
    }
    await issuer?.close();
    await swarm?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** What the swarm says of the stack's tasks, and the api-backends' last log lines: for a failure's message. */
  const whatSwarmSays = async (): Promise<string> => {
    const manager = swarm!.nodes[0]!;
    const ps = await manager.docker('stack', 'ps', '--no-trunc', '--format', '{{.Node}} {{.Name}} {{.CurrentState}} {{.Error}}', stack).catch((e: Error) => e.message);
    const logs = await run('docker', ['-H', `unix://${manager.socket}`, 'service', 'logs', '--tail', '30', `${stack}_api-backend`], { maxBuffer: 8 << 20 }).then(
      (r) => r.stdout + r.stderr,
      (e: Error) => e.message,
    );
    return `\n--- docker stack ps\n${ps}\n--- api-backend logs\n${logs}`;
  };

  /** An HTTPS request to one node's edge, checked against the stack's certificate (named localhost). */
  const request = (
    address: string,
    path: string,
    options: { method?: string; token?: string; body?: unknown } = {},
  ): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const data = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
      const req = https.request(
        {
          host: address,
          port: ports.https,
          path,
          method: options.method ?? 'GET',
          servername: 'localhost',
          ca: readFileSync(join(dir, 'state/tls/fullchain.pem')),
          agent: false,
          timeout: 60_000,
          headers: {
            host: `localhost:${ports.https}`,
            ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
            ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}),
          },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error(`no answer from ${address}${path} within 60 s`)));
      req.end(data);
    });
  const get = (address: string, path: string): Promise<{ status: number; body: string }> => request(address, path);
  const signIn = async (username: string): Promise<string> => {
    const config = JSON.parse((await get(swarm!.nodes[0]!.address, '/api/config')).body) as { issuer: string; audience: string; desktopClientId: string };
    return (await headlessSignIn({ issuer: config.issuer, clientId: config.desktopClientId, audience: config.audience, username })).accessToken;
  };
  /**
   * This stack's proxies on one node's engine, by whose they are: a user's (its name's hash; a
   * spare once taken carries its user's name, the spare's own labels) or an unclaimed spare
   * (still under the name of the random id it was made for: naming.ts, isUnclaimedSpare), with
   * the user network each is on.
   */
  const proxiesOf = async (n: TestSwarm['nodes'][number], all = false): Promise<Array<{ user: string | undefined; network: string }>> => {
    const ids = (await n.docker('ps', ...(all ? ['-a'] : []), '-q', '--filter', `label=cloudtolocalllm.stack=${stack}`, '--filter', 'label=cloudtolocalllm.type=streaming-proxy')).split('\n').filter(Boolean);
    if (ids.length === 0) return [];
    // '|' between the fields: a label a container does not have prints as nothing.
    const format = '{{.Name}}|{{index .Config.Labels "cloudtolocalllm.owner"}}|{{index .Config.Labels "cloudtolocalllm.spare"}}|{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}';
    return (await n.docker('inspect', '--format', format, ...ids)).split('\n').filter(Boolean).map((line) => {
      const [name = '', owner = '', spare = '', network = ''] = line.trim().split('|');
      const hash = name.slice(-64);
      return { user: spare !== '' && hash === owner ? undefined : hash, network };
    });
  };
  /** The users with a proxy on each node's engine (or those given): unclaimed spares left out. */
  const proxiesPerNode = async (nodes = swarm!.nodes): Promise<string[][]> =>
    Promise.all(nodes.map(async (n) => (await proxiesOf(n)).flatMap((p) => (p.user === undefined ? [] : [p.user]))));
  /**
   * One node's users with a proxy container in any state and with a running one, and its user
   * networks that no proxy container is on (leaked).
   */
  const userObjects = async (n: TestSwarm['nodes'][number]): Promise<{ all: string[]; running: string[]; networksWithout: string[] }> => {
    const users = (list: Array<{ user: string | undefined }>): string[] => list.flatMap((p) => (p.user === undefined ? [] : [p.user])).sort();
    const all = await proxiesOf(n, true);
    const used = new Set(all.map((p) => p.network));
    const networks = (await n.docker('network', 'ls', '--filter', 'label=cloudtolocalllm.type=user-network', '--filter', `label=cloudtolocalllm.stack=${stack}`, '--format', '{{.Name}}')).split('\n').filter(Boolean);
    return { all: users(all), running: users(await proxiesOf(n)), networksWithout: networks.filter((x) => !used.has(x)).sort() };
  };
  /** POST /api/proxy/start for a user through one edge: true once it is answered with the user's proxy. */
  const startProxy = async (edge: string, token: string): Promise<{ ok: boolean; answer: string }> => {
    const r = await request(edge, '/api/proxy/start', { method: 'POST', token, body: {} }).catch((e: Error) => ({ status: 0, body: e.message }));
    return { ok: r.status === 200 || r.status === 201, answer: `${r.status} ${r.body.slice(0, 300)}` };
  };
  /** /health through a node's edge: the cluster's members as that node sees them. */
  const clusterView = async (address: string): Promise<{ members: string[]; live: string[] } | undefined> => {
    const h = await get(address, '/health').catch(() => undefined);
    if (h?.status !== 200) return undefined;
    return (JSON.parse(h.body) as { cluster?: { members: string[]; live: string[] } }).cluster;
  };

  test('--dry-run shows the stack deploy and changes nothing; the deploy runs every service on every node', async (t) => {
    t.diagnostic(`deploy --swarm took ${(deployMs / 1000).toFixed(1)} s`);
    assert.equal(dryRun.code, 0, dryRun.stdout);
    assert.match(dryRun.stdout, /\[dry-run\] docker stack deploy --prune --resolve-image never -c \S+docker-stack\.yml ctll-swarm-/);
    assert.equal(stacksAfterDryRun, '', 'the dry run deployed nothing');
    assert.equal(deployed.code, 0, deployed.stdout + (await whatSwarmSays()));
    assert.match(deployed.stdout, /api-backend members \(every ready node, port 18444\): 10\.251\.0\.2:18444,10\.251\.0\.3:18444,10\.251\.0\.4:18444/);
    assert.match(deployed.stdout, /all services running on every node/);
    const manager = swarm!.nodes[0]!;
    for (const service of ['api-backend', 'nginx-proxy', 'docker-api-filter', 'isolation-firewall']) {
      const tasks = (await manager.docker('service', 'ps', '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}', `${stack}_${service}`)).split('\n');
      assert.equal(tasks.filter((l) => / Running /.test(l)).length, 3, `${service}: ${tasks.join('; ')}`);
    }
  });

  test('every node answers through its own edge, sees the three members and names itself', async () => {
    for (const node of swarm!.nodes) {
      const deadline = Date.now() + 60_000;
      let health: { status: number; body: string } | undefined;
      for (;;) {
        health = await get(node.address, '/health').catch((e: Error) => ({ status: 0, body: e.message }));
        const cluster = health.status === 200 ? (JSON.parse(health.body) as { cluster?: { self?: string; members?: string[] } }).cluster : undefined;
        if (cluster?.members?.length === 3 && cluster.self === `${node.address}:${ports.cluster}`) break;
        if (Date.now() > deadline) assert.fail(`${node.name}: /health through the edge: ${health.status} ${health.body}${await whatSwarmSays()}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  });

  const USERS = 60;
  let tokens: Map<string, string>;
  test(`${USERS} users signed in through the edges: each gets one proxy, on one node, spread over the three`, { timeout: 600_000 }, async (t) => {
    tokens = new Map();
    const names = Array.from({ length: USERS }, (_, i) => `swarm-user-${id}-${i}`);
    const started = Date.now();
    // Six at a time, each through the edge of another node.
    for (let i = 0; i < names.length; i += 6) {
      await Promise.all(
        names.slice(i, i + 6).map(async (name, j) => {
          const token = await signIn(name);
          tokens.set(name, token);
          const edge = swarm!.nodes[(i + j) % 3]!.address;
          const r = await request(edge, '/api/proxy/start', { method: 'POST', token, body: {} });
          assert.ok(r.status === 200 || r.status === 201, `${name} through ${edge}: ${r.status} ${r.body}`);
        }),
      );
    }
    const perNode = await proxiesPerNode();
    const counts = perNode.map((p) => p.length);
    t.diagnostic(`${USERS} proxies started in ${((Date.now() - started) / 1000).toFixed(1)} s; per node: ${counts.join('/')}`);
    const all = perNode.flat();
    assert.equal(all.length, USERS, `proxies per node: ${counts.join('/')}`);
    assert.equal(new Set(all).size, USERS, 'a user has proxies on two nodes');
    // A proxy start places its user under the load bound as a bridge does (docs/scaling.md).
    const even = USERS / 3;
    t.diagnostic(`largest deviation from even: ${((Math.max(...counts.map((c) => Math.abs(c - even))) / even) * 100).toFixed(0)}%`);
    for (const [i, c] of counts.entries()) assert.ok(Math.abs(c - even) <= 0.2 * even, `${swarm!.nodes[i]!.name} runs ${c} of ${USERS} proxies (${counts.join('/')}): outside 20% of even`);
  });

  test('an Ollama client reaches the right proxy through the edge of any node; another user reaches nothing of it', { timeout: 300_000 }, async () => {
    const emulator = new OllamaEmulator({ tokenIntervalMs: 5 });
    await emulator.start();
    // The bridge CLI connects to wss://localhost: a relay on this namespace's loopback to node 1's edge.
    const relay = net.createServer((c) => {
      const u = net.connect(ports.https, swarm!.nodes[0]!.address);
      c.pipe(u).pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const relayPort = (relay.address() as net.AddressInfo).port;
    let bridge: BridgeProcess | undefined;
    try {
      const [owner, other] = [...tokens.keys()];
      bridge = await startBridgeProcess({ proxyUrl: `wss://localhost:${relayPort}/ws/bridge`, token: tokens.get(owner!)!, ollamaUrl: emulator.url, caFile: join(dir, 'state/tls/fullchain.pem'), timeoutMs: 120_000 });
      for (const node of swarm!.nodes) {
        const r = await request(node.address, '/ollama/api/generate', { method: 'POST', token: tokens.get(owner!)!, body: { model: 'llama3.2', prompt: `through ${node.name}`, stream: false, options: { num_predict: 5 } } });
        assert.equal(r.status, 200, `${node.name}: ${r.body}`);
        assert.equal((JSON.parse(r.body) as { response: string }).response, expectedText(5), node.name);
      }
      const seen = emulator.requests.length;
      for (const node of swarm!.nodes) {
        const r = await request(node.address, '/ollama/api/tags', { token: tokens.get(other!)! });
        assert.notEqual(r.status, 200, `${node.name}: another user's request was answered: ${r.body}`);
      }
      assert.equal(emulator.requests.length, seen, "another user's requests reached this user's computer");
    } finally {
      await bridge?.stop();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
      await emulator.close();
    }
  });
  // A node's loss and return, with the users signed in above (no new deployment).
  let lostUsers = 0;
  test("one node's engine killed (dockerd, containerd, shims and its containers, SIGKILL): its users are served again through the other nodes' edges within 30 s, each with one proxy, nothing left without an owner", { timeout: 120_000 }, async (t) => {
    const [n1, n2, n3] = swarm!.nodes as [TestSwarm['nodes'][number], TestSwarm['nodes'][number], TestSwarm['nodes'][number]];
    const survivors = [n1, n2];
    const before = await proxiesPerNode();
    lostUsers = before[2]!.length;
    assert.ok(lostUsers > 0, `${n3.name} holds no user: its loss would prove nothing`);
    const killed = await swarm!.killEngine(n3);
    const started = Date.now();
    // Beside the users' requests: when both survivors count the lost node out (their probes).
    const lostMember = `${n3.address}:${ports.cluster}`;
    const dropped = (async (): Promise<number | undefined> => {
      while (Date.now() - started < 60_000) {
        const views = await Promise.all(survivors.map((n) => clusterView(n.address)));
        if (views.every((v) => v !== undefined && !v.live.includes(lostMember))) return Date.now() - started;
        await new Promise((r) => setTimeout(r, 200));
      }
      return undefined;
    })();
    // Every user asks for its proxy through a survivor's edge until answered: those of the
    // survivors at once, those of the lost node once the survivors' probes have dropped it.
    const pending = new Map(tokens);
    const refused = new Map<string, string>();
    for (let round = 0; pending.size > 0; round++) {
      if (Date.now() - started > 30_000) assert.fail(`${pending.size} users not served 30 s after the loss, e.g. ${[...refused].slice(0, 3).join('; ')}${await whatSwarmSays()}`);
      await Promise.all(
        [...pending].map(async ([name, token], i) => {
          const r = await startProxy(survivors[(i + round) % 2]!.address, token);
          if (r.ok) pending.delete(name);
          else refused.set(name, r.answer);
        }),
      );
      if (pending.size > 0) await new Promise((r) => setTimeout(r, 500));
    }
    const elapsed = Date.now() - started;
    t.diagnostic(`${killed} processes of ${n3.name} killed; both survivors counted it out after ${(await dropped) ?? 'more than 60000'} ms; its ${lostUsers} users served again through the other edges after ${elapsed} ms, most of it starting their new proxies (refused meanwhile, e.g.: ${[...refused.values()][0] ?? 'none'})`);
    assert.ok(elapsed < 30_000, `served again after ${elapsed} ms`);
    for (const n of survivors) {
      const view = await clusterView(n.address);
      assert.deepEqual(view?.live, [n1, n2].map((x) => `${x.address}:${ports.cluster}`), `${n.name} counts the lost node out`);
      assert.equal(view?.members.length, 3, `${n.name} still lists the lost node (it may come back)`);
    }
    // Nothing leaks on the survivors: each user one running proxy, no stopped one, no network
    // without one. The starts took spares, and each node makes new ones, one at a time, network
    // first: a network waits for its spare's container a moment (seconds, on a busy machine).
    let objects = await Promise.all(survivors.map((n) => userObjects(n)));
    for (const settled = Date.now() + 20_000; objects.some((o) => o.networksWithout.length > 0) && Date.now() < settled; ) {
      await new Promise((r) => setTimeout(r, 500));
      objects = await Promise.all(survivors.map((n) => userObjects(n)));
    }
    const running = objects.flatMap((o) => o.running);
    assert.equal(running.length, USERS, `running proxies on the survivors: ${objects.map((o) => o.running.length).join('/')}`);
    assert.equal(new Set(running).size, USERS, 'a user has proxies on both survivors');
    for (const [i, o] of objects.entries()) {
      assert.deepEqual(o.all, o.running, `${survivors[i]!.name}: a proxy container that is not running`);
      assert.deepEqual(o.networksWithout, [], `${survivors[i]!.name}: user networks without a proxy`);
      assert.ok(o.running.length >= before[i]!.length, `${survivors[i]!.name} kept its own users (${before[i]!.length} → ${o.running.length})`);
    }
  });

  test('the node back (its engine restarted, its tasks running): a live member on every node again, nothing of its old proxies left, and every new user lands on it until it holds its share; placed users never move, so that is what "the spread recovers" means', { timeout: 300_000 }, async (t) => {
    assert.ok(lostUsers > 0, 'the loss case ran');
    const [manager, , n3] = swarm!.nodes as [TestSwarm['nodes'][number], TestSwarm['nodes'][number], TestSwarm['nodes'][number]];
    const started = Date.now();
    await swarm!.startEngine(n3);
    const engineMs = Date.now() - started;
    // The new users sign in meanwhile (the issuer is the test's own).
    const FRESH = 6;
    const freshTokens = Promise.all(Array.from({ length: FRESH }, (_, i) => signIn(`swarm-fresh-${id}-${i}`)));
    const nodeId = await n3.docker('info', '--format', '{{.Swarm.NodeID}}');
    let readyMs = 0;
    let taskMs = 0;
    const taskDeadline = Date.now() + 180_000;
    while (!taskMs) {
      if (Date.now() > taskDeadline) assert.fail(`${n3.name}'s api-backend task did not run again within 180 s${await whatSwarmSays()}`);
      if (!readyMs && (await manager.docker('node', 'inspect', nodeId, '--format', '{{.Status.State}}').catch(() => '')) === 'ready') readyMs = Date.now() - started;
      const tasks = await manager.docker('service', 'ps', '--filter', `node=${nodeId}`, '--filter', 'desired-state=running', '--format', '{{.CurrentState}}', `${stack}_api-backend`).catch(() => '');
      if (/^Running/m.test(tasks)) taskMs = Date.now() - started;
      else await new Promise((r) => setTimeout(r, 500));
    }
    const everyone = swarm!.nodes.map((x) => `${x.address}:${ports.cluster}`);
    for (const n of swarm!.nodes) {
      const deadline = Date.now() + 180_000;
      while (JSON.stringify((await clusterView(n.address))?.live) !== JSON.stringify(everyone)) {
        if (Date.now() > deadline) assert.fail(`${n.name} does not count ${n3.name} live again: ${JSON.stringify(await clusterView(n.address))}${await whatSwarmSays()}`);
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
    t.diagnostic(`${n3.name} after its engine was started again: engine answering ${engineMs} ms, node ready ${readyMs} ms, its api-backend task running ${taskMs} ms, live on every node ${Date.now() - started} ms`);
    // Where Swarm's time went: the node's api-backend tasks since the loss, newest first.
    const history = await manager.docker('service', 'ps', '--filter', `node=${nodeId}`, '--format', '{{.DesiredState}} | {{.CurrentState}} | {{.Error}}', `${stack}_api-backend`).catch((e: Error) => e.message);
    t.diagnostic(`${n3.name}'s api-backend tasks: ${history.split('\n').slice(0, 4).join('; ')}`);
    // Its api-backend reconciled with its engine at start: the proxies the loss stopped are removed, with their networks.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const o = await userObjects(n3);
      if (o.all.length === 0 && o.networksWithout.length === 0) break;
      if (Date.now() > deadline) assert.fail(`${n3.name} still has ${o.all.length} users' proxy containers and ${o.networksWithout.length} user networks without a proxy of before its loss`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const before = await proxiesPerNode();
    // New users through every edge: the two others hold about 30 each, over the bound, so each lands on it.
    await Promise.all(
      (await freshTokens).map(async (token, i) => {
        const r = await startProxy(swarm!.nodes[i % 3]!.address, token);
        assert.ok(r.ok, `a new user through ${swarm!.nodes[i % 3]!.name}: ${r.answer}`);
      }),
    );
    const now = await proxiesPerNode();
    t.diagnostic(`proxies per node before the new users: ${before.map((p) => p.length).join('/')}, after: ${now.map((p) => p.length).join('/')}`);
    assert.equal(now[2]!.length, FRESH, `every new user on ${n3.name}`);
    assert.deepEqual(now.slice(0, 2).map((p) => p.sort()), before.slice(0, 2).map((p) => p.sort()), 'the placed users stayed where they were');
    assert.equal(now.flat().length, USERS + FRESH);
  });
});
