/**
 * The Docker API filter (@cloudtolocalllm/docker-api-filter, server/docker-api-filter): the
 * mitigation for handing the cloud server the engine's socket.
 *  - its policy accepts exactly what the runtime sends (the runtime's own create options from
 *    @cloudtolocalllm/proxy-spec, server/proxy-spec/container-spec.ts, which its allow-list is derived from) and
 *    refuses each way out of a container;
 *  - on a real engine, the Docker runtime starts, lists and stops a proxy through it, sees only
 *    its own stack's objects, and cannot touch a proxy of another stack.
 * The engine part is skipped without a Docker engine, except in CI (CI=true).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkContainerCreate,
  checkNetworkCreate,
  LABEL_STACK,
  checkRename,
  matchRequest,
  Refusal,
  scopeFilters,
  startDockerApiFilter,
  type DockerApiFilter,
  type FilterPolicy,
} from '@cloudtolocalllm/docker-api-filter';
import { containerCreateOptions, DEFAULT_LIMITS, networkCreateOptions } from '@cloudtolocalllm/proxy-spec/container-spec';
import { DockerRuntime } from '@cloudtolocalllm/server/runtime/docker/docker-runtime';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { IN_CI, ROOT, run } from './deploy-harness.js';

const IMAGE = process.env['CTLL_PROXY_IMAGE'] ?? 'cloudtolocalllm/streaming-proxy:local';
const RANGE = '10.232.0.0/16';
const policy: FilterPolicy = { image: IMAGE, subnetRange: RANGE, stack: 'unit', maxMemoryBytes: 2 * 1024 ** 3, maxNanoCpus: 4e9, maxPids: 4096 };
const HASH = userHash('filter-unit-user');
const SUBNET = '10.232.0.16/28';

/** What the runtime sends, as JSON would carry it (the name goes in the query). */
function runtimeCreate(): { name: string; body: Record<string, any> } {
  const { name, ...body } = containerCreateOptions({ userHash: HASH, secret: 's'.repeat(32), image: IMAGE, subnet: SUBNET, limits: DEFAULT_LIMITS, stack: 'unit' });
  return { name: name!, body: JSON.parse(JSON.stringify(body)) as Record<string, any> };
}
function refusedWith(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Refusal, String(e));
    return e.message;
  }
  return 'accepted';
}

describe('the Docker API filter: policy', () => {
  test('only the endpoints the runtime uses are allowed', () => {
    const ok = (method: string, url: string): string => {
      try {
        return matchRequest(method, url).route.name;
      } catch (e) {
        return `refused: ${(e as Error).message}`;
      }
    };
    assert.equal(ok('GET', '/_ping'), 'ping');
    assert.equal(ok('GET', '/v1.41/version'), 'version');
    assert.equal(ok('POST', '/containers/create?name=x'), 'container create');
    assert.equal(ok('POST', `/v1.41/containers/ctll-proxy-${HASH}/attach?stream=1`), 'container attach');
    assert.equal(ok('DELETE', '/networks/abc'), 'network remove');
    assert.equal(ok('POST', `/v1.41/containers/abc/rename?name=ctll-unit-proxy-${HASH}`), 'container rename');
    assert.equal(ok('GET', '/events?filters=%7B%7D'), 'events');
    for (const [method, url] of [
      ['POST', '/containers/abc/exec'],
      ['POST', '/exec/abc/start'],
      ['POST', '/images/create?fromImage=alpine'],
      ['POST', '/build'],
      ['POST', '/volumes/create'],
      ['PUT', '/containers/abc/archive?path=/'],
      ['GET', '/containers/abc/archive?path=/etc'],
      ['POST', '/containers/abc/update'],
      ['POST', '/commit?container=abc'],
      ['POST', '/swarm/init'],
      ['POST', '/plugins/pull'],
      ['GET', '/info'],
      ['POST', '/networks/abc/connect'],
      ['GET', '/containers/abc/../../images/json'],
      ['GET', '/containers/%2e%2e/json'],
      ['GET', '//containers/json'],
      ['DELETE', '/images/abc'],
      ['POST', '/session'],
    ] as const) {
      assert.match(ok(method, url), /^refused: /, `${method} ${url}`);
    }
  });

  test("the runtime's own container and network options pass; the stack label is added", () => {
    const { name, body } = runtimeCreate();
    const checked = checkContainerCreate(name, body, policy);
    assert.equal(checked.network, `ctll-unit-net-${HASH}`);
    assert.equal((checked.body['Labels'] as Record<string, string>)[LABEL_STACK], 'unit');
    const net = checkNetworkCreate(JSON.parse(JSON.stringify(networkCreateOptions(HASH, SUBNET, 'unit'))), policy);
    assert.equal((net['Labels'] as Record<string, string>)[LABEL_STACK], 'unit');
    // Names of no stack, or of another, are not this stack's to create.
    assert.match(refusedWith(() => checkContainerCreate(`ctll-proxy-${HASH}`, body, policy)), /ctll-unit-proxy-<user hash>/);
    assert.match(refusedWith(() => checkContainerCreate(`ctll-other-proxy-${HASH}`, body, policy)), /ctll-unit-proxy-<user hash>/);
    assert.match(refusedWith(() => checkNetworkCreate(JSON.parse(JSON.stringify(networkCreateOptions(HASH, SUBNET))), policy)), /ctll-unit-net-<user hash>/);
  });

  test('a rename (a spare taken by a user) only to a proxy name of this stack', () => {
    assert.equal(refusedWith(() => checkRename(`ctll-unit-proxy-${HASH}`, policy)), 'accepted');
    for (const name of [null, '', `ctll-proxy-${HASH}`, `ctll-other-proxy-${HASH}`, `ctll-unit-net-${HASH}`, 'nginx', `ctll-unit-proxy-${HASH}x`]) {
      assert.match(refusedWith(() => checkRename(name, policy)), /may only be renamed to ctll-unit-proxy-<user hash>/, String(name));
    }
  });

  test('every way out of the container is refused', () => {
    const cases: Array<[string, (b: Record<string, any>) => void, RegExp]> = [
      ['another image', (b) => (b['Image'] = 'alpine:latest'), /only the proxy image/],
      ['privileged', (b) => (b['HostConfig']['Privileged'] = true), /Privileged/],
      ['a bind mount of /', (b) => (b['HostConfig']['Binds'] = ['/:/host']), /Binds/],
      ['a mount', (b) => (b['HostConfig']['Mounts'] = [{ Type: 'bind', Source: '/', Target: '/host' }]), /Mounts/],
      ['a device', (b) => (b['HostConfig']['Devices'] = [{ PathOnHost: '/dev/sda' }]), /Devices/],
      ['an added capability', (b) => (b['HostConfig']['CapAdd'] = ['SYS_ADMIN']), /CapAdd/],
      ['capabilities kept', (b) => (b['HostConfig']['CapDrop'] = []), /CapDrop must contain ALL/],
      ['the host network', (b) => (b['HostConfig']['NetworkMode'] = 'host'), /NetworkMode/],
      ["another container's network", (b) => (b['HostConfig']['NetworkMode'] = 'container:abc'), /NetworkMode/],
      ['the host pid namespace', (b) => (b['HostConfig']['PidMode'] = 'host'), /PidMode/],
      ['the host ipc namespace', (b) => (b['HostConfig']['IpcMode'] = 'host'), /IpcMode/],
      ['the host user namespace', (b) => (b['HostConfig']['UsernsMode'] = 'host'), /UsernsMode/],
      ['seccomp off', (b) => b['HostConfig']['SecurityOpt'].push('seccomp=unconfined'), /SecurityOpt/],
      ['unmasked /proc', (b) => (b['HostConfig']['MaskedPaths'] = []), /MaskedPaths/],
      ['a writable root', (b) => (b['HostConfig']['ReadonlyRootfs'] = false), /ReadonlyRootfs/],
      ['swap', (b) => (b['HostConfig']['MemorySwap'] = -1), /MemorySwap/],
      ['no memory limit', (b) => delete b['HostConfig']['Memory'], /Memory/],
      ['a published port', (b) => (b['HostConfig']['PortBindings'] = { '8080/tcp': [{ HostPort: '80' }] }), /PortBindings/],
      ['an executable tmpfs elsewhere', (b) => (b['HostConfig']['Tmpfs'] = { '/app': 'rw' }), /Tmpfs/],
      ['root', (b) => (b['User'] = '0:0'), /non-root/],
      ['no user', (b) => delete b['User'], /non-root/],
      ['a sysctl', (b) => (b['HostConfig']['Sysctls'] = { 'net.ipv4.ip_forward': '1' }), /Sysctls/],
      ['a cgroup parent', (b) => (b['HostConfig']['CgroupParent'] = '/'), /CgroupParent/],
      ['another runtime', (b) => (b['HostConfig']['Runtime'] = 'runc-unsafe'), /Runtime/],
      ['an entrypoint', (b) => (b['Entrypoint'] = ['/bin/sh']), /Entrypoint/],
      ['volumes', (b) => (b['Volumes'] = { '/data': {} }), /Volumes/],
      ['a restart policy', (b) => (b['HostConfig']['RestartPolicy'] = { Name: 'always' }), /RestartPolicy/],
      ['no proxy label', (b) => (b['Labels'] = {}), /label/],
      ["another stack's label", (b) => (b['Labels'][LABEL_STACK] = 'other'), /must be unit/],
      ['a second network', (b) => (b['NetworkingConfig']['EndpointsConfig']['bridge'] = {}), /own network/],
    ];
    for (const [what, mutate, reason] of cases) {
      const { name, body } = runtimeCreate();
      mutate(body);
      assert.match(refusedWith(() => checkContainerCreate(name, body, policy)), reason, what);
    }
    const { body } = runtimeCreate();
    assert.match(refusedWith(() => checkContainerCreate('my-container', body, policy)), /ctll-unit-proxy-<user hash>/);
  });

  test('networks: only Internal user networks inside the configured range', () => {
    const cases: Array<[string, (b: Record<string, any>) => void, RegExp]> = [
      ['not internal', (b) => (b['Internal'] = false), /Internal/],
      ['outside the range', (b) => (b['IPAM']['Config'][0] = { Subnet: '192.168.0.0/24', Gateway: '192.168.0.1' }), /outside CTLL_SUBNET_RANGE/],
      ['a huge subnet over the range', (b) => (b['IPAM']['Config'][0] = { Subnet: '10.0.0.0/8' }), /outside CTLL_SUBNET_RANGE/],
      ['a host interface as bridge', (b) => (b['Options']['com.docker.network.bridge.name'] = 'eth0'), /bridge.name/],
      ['another driver', (b) => (b['Driver'] = 'macvlan'), /bridge driver/],
      ['a driver option', (b) => (b['Options']['parent'] = 'eth0'), /parent/],
      ['attachable', (b) => (b['Attachable'] = true), /attachable/],
      ['another name', (b) => (b['Name'] = 'bridge2'), /ctll-unit-net-/],
    ];
    for (const [what, mutate, reason] of cases) {
      const body = JSON.parse(JSON.stringify(networkCreateOptions(HASH, SUBNET, 'unit'))) as Record<string, any>;
      mutate(body);
      assert.match(refusedWith(() => checkNetworkCreate(body, policy)), reason, what);
    }
  });

  test("lists and events must ask for the runtime's label, and get the stack's added", () => {
    const scoped = JSON.parse(scopeFilters(JSON.stringify({ label: ['cloudtolocalllm.type=streaming-proxy'], status: ['running'] }), 'streaming-proxy', policy, true)!) as Record<string, string[]>;
    assert.deepEqual(scoped['label'], ['cloudtolocalllm.type=streaming-proxy', `${LABEL_STACK}=unit`]);
    assert.deepEqual(scoped['status'], ['running']);
    // The old map form works too.
    const fromMap = JSON.parse(scopeFilters(JSON.stringify({ label: { 'cloudtolocalllm.type=streaming-proxy': true } }), 'streaming-proxy', policy, true)!) as Record<string, string[]>;
    assert.ok(fromMap['label']!.includes(`${LABEL_STACK}=unit`));
    assert.match(refusedWith(() => scopeFilters(null, 'streaming-proxy', policy, true)), /must filter on the label/);
    assert.match(refusedWith(() => scopeFilters(JSON.stringify({ label: ['cloudtolocalllm.type=streaming-proxy', `${LABEL_STACK}=other`] }), 'streaming-proxy', policy, true)), /must be unit/);
    // The subnet allocator's unfiltered network list stays as it is (read only).
    assert.equal(scopeFilters(null, 'user-network', policy, false), null);
  });
});

const engine = await run('docker', ['version', '--format', '{{.Server.APIVersion}}']).then(
  () => true,
  () => false,
);
if (!engine && IN_CI) test('a Docker engine is reachable (CI machines must have one)', () => assert.fail('docker version failed'));
const skipEngine = engine ? false : 'no Docker engine here; CI=true makes this a failure';

describe('the Docker API filter on a real engine', { skip: skipEngine, concurrency: false }, () => {
  const stack = `ctll-filter-test-${randomBytes(3).toString('hex')}`;
  let dir: string;
  let filter: DockerApiFilter;
  let docker: DockerRuntime['docker'];
  let runtime: DockerRuntime;
  const foreignName = `ctll-proxy-${userHash(`foreign-${stack}`)}`;
  const refusals: string[] = [];

  before(async () => {
    await run('bash', [join(ROOT, 'scripts/build-proxy-image.sh')], { cwd: ROOT, maxBuffer: 16 << 20 });
    dir = mkdtempSync(join(tmpdir(), 'ctll-filter-'));
    filter = await startDockerApiFilter({
      listen: join(dir, 'docker.sock'),
      upstream: '/var/run/docker.sock',
      policy: { ...policy, stack },
      log: (level, msg, fields) => {
        if (msg === 'refused') refusals.push(String(fields?.['reason']));
      },
    });
    // The runtime's engine client, pointed at the filter the way the api-backend's is (DOCKER_HOST
    // is read when the client is made; unset again so the docker CLI below talks to the engine).
    process.env['DOCKER_HOST'] = `unix://${join(dir, 'docker.sock')}`;
    // The filter is about the engine API; the host firewall is the runtime's business (its tests).
    runtime = new DockerRuntime({ subnetRange: RANGE, firewall: 'off', startTimeoutMs: 90_000, stack });
    delete process.env['DOCKER_HOST'];
    docker = runtime.docker;
    // A proxy of "another stack": labelled like ours but without this stack's label.
    await run('docker', ['create', '--name', foreignName, '--label', 'cloudtolocalllm.type=streaming-proxy', '--label', `cloudtolocalllm.owner=${userHash(`foreign-${stack}`)}`, '--network', 'none', IMAGE]);
  });

  after(async () => {
    await runtime?.close();
    await filter?.close();
    await run('docker', ['rm', '-f', foreignName]).catch(() => undefined);
    // Only this test's objects: the stack label is unique to this run.
    const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=${LABEL_STACK}=${stack}`]);
    if (stdout.trim()) await run('docker', ['rm', '-f', ...stdout.trim().split('\n')]);
    const nets = await run('docker', ['network', 'ls', '-q', '--filter', `label=${LABEL_STACK}=${stack}`]);
    if (nets.stdout.trim()) await run('docker', ['network', 'rm', ...nets.stdout.trim().split('\n')]).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the Docker runtime starts, lists, adopts and stops a proxy through the filter', { timeout: 180_000 }, async () => {
    const engineVersion = (await run('docker', ['version', '--format', '{{.Server.Version}}'])).stdout.trim();
    assert.deepEqual(await DockerRuntime.probe(docker), { ok: true, version: engineVersion });
    const id = `filter-user-${stack}`;
    const proxy = await runtime.start({ userId: id, userHash: userHash(id), secret: randomBytes(24).toString('hex') });
    assert.match(proxy.endpoint, /^http:\/\/10\.232\.\d+\.\d+:8080$/);
    const health = await fetch(`${proxy.endpoint}/health`);
    assert.equal(health.status, 200);
    // Labelled with this stack by the filter.
    const label = await run('docker', ['inspect', '--format', `{{ index .Config.Labels "${LABEL_STACK}" }}`, proxy.id]);
    assert.equal(label.stdout.trim(), stack);
    // The runtime sees its own proxy only: not the foreign one, not the other stacks' proxies.
    const listed = await runtime.list();
    assert.deepEqual(listed.map((p) => p.id), [proxy.id]);
    assert.ok(listed[0]!.secret, 'the secret is read back (adoption after a restart)');
    assert.deepEqual(await runtime.pruneOrphans(), { containers: 0, networks: 0 }, 'pruning must not see the foreign stopped proxy');
    await runtime.stop(userHash(id));
    assert.deepEqual(await runtime.list(), []);
    const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=${LABEL_STACK}=${stack}`]);
    assert.equal(stdout.trim(), '');
  });

  test('a spare taken through the filter: renamed to the user, refused any other name', { timeout: 180_000 }, async () => {
    process.env['DOCKER_HOST'] = `unix://${join(dir, 'docker.sock')}`;
    const pooled = new DockerRuntime({ subnetRange: RANGE, firewall: 'off', startTimeoutMs: 90_000, stack, spares: 1 });
    delete process.env['DOCKER_HOST'];
    try {
      pooled.fillSpares();
      for (const deadline = Date.now() + 90_000; pooled.sparesReady < 1; await sleep(100)) assert.ok(Date.now() < deadline, 'the spare was not made');
      const id = `filter-spare-user-${stack}`;
      const proxy = await pooled.start({ userId: id, userHash: userHash(id), secret: randomBytes(24).toString('hex') });
      assert.equal(proxy.id, `ctll-${stack}-proxy-${userHash(id)}`);
      assert.ok(proxy.startPhases?.claim !== undefined, JSON.stringify(proxy.startPhases));
      assert.equal((await fetch(`${proxy.endpoint}/health`)).status, 200);
      await assert.rejects(pooled.docker.getContainer(proxy.id).rename({ name: 'nginx' }), /HTTP code 403/);
      await assert.rejects(pooled.docker.getContainer(proxy.id).rename({ name: `ctll-proxy-${HASH}` }), /HTTP code 403/);
      assert.ok(refusals.some((r) => /may only be renamed/.test(r)), refusals.join('\n'));
      await pooled.stop(userHash(id));
    } finally {
      await pooled.close();
    }
    const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=${LABEL_STACK}=${stack}`]);
    assert.equal(stdout.trim(), '', 'close() removed the spare made after the claim');
    const nets = await run('docker', ['network', 'ls', '-q', '--filter', `label=${LABEL_STACK}=${stack}`]);
    assert.equal(nets.stdout.trim(), '');
  });

  test("another stack's proxy is invisible and untouchable; forbidden calls are refused by the engine's client", async () => {
    const foreign = docker.getContainer(foreignName);
    // 404 from the filter, as if it did not exist (not 403, which would say it does).
    const notFound = (e: { statusCode?: number }): boolean => e.statusCode === 404;
    await assert.rejects(foreign.inspect(), notFound);
    await assert.rejects(foreign.remove({ force: true }), notFound);
    // Still there.
    const { stdout } = await run('docker', ['inspect', '--format', '{{.Name}}', foreignName]);
    assert.equal(stdout.trim(), `/${foreignName}`);
    // The classic escape, and its variants.
    await assert.rejects(
      docker.createContainer({ name: `ctll-${stack}-proxy-${HASH}`, Image: IMAGE, HostConfig: { Privileged: true, Binds: ['/:/host'] } }),
      /HTTP code 403/,
    );
    await assert.rejects(docker.createImage({ fromImage: 'alpine' }), /HTTP code 403/);
    await assert.rejects(docker.listContainers({ all: true }), /HTTP code 403/, 'an unfiltered list reveals every container');
    await assert.rejects(docker.getContainer(foreignName).exec({ Cmd: ['node', '-e', '1'] }), /HTTP code 403/);
    assert.ok(refusals.some((r) => /label|Privileged|Binds/.test(r)), refusals.join('\n'));
    assert.ok(refusals.some((r) => /exec is not an endpoint/.test(r)), refusals.join('\n'));
  });
});
