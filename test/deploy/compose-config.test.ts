/**
 * The deployment's files, checked without starting anything:
 *  - server/deploy/docker-compose.multi.yml validates with Debian's docker-compose (v1) and says
 *    what the design needs (host network + loopback for api-backend and nginx, no network for the
 *    Docker API filter, the engine's socket only in the filter, health checks, restart policies,
 *    limits, the build-only profile);
 *  - every variable the cloud server reads is in server/deploy/.env.example and passed on;
 *  - the nginx renderer refuses values that would inject configuration;
 *  - the deploy script checks its settings and --dry-run changes nothing;
 *  - shellcheck finds nothing in scripts/deploy and scripts/build-proxy-image.sh.
 * docker-compose, the docker CLI or shellcheck missing: skipped, except in CI (CI=true), where that is a failure.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { RECOMMENDED_SYSCTLS } from '@cloudtolocalllm/server/runtime/docker/host-limits';
import { envReads, filesUnder } from '../docs/environment.js';
import { IN_CI, ROOT, run, which } from './deploy-harness.js';

const COMPOSE_FILE = join(ROOT, 'server/deploy/docker-compose.multi.yml');
const ENV_EXAMPLE = join(ROOT, 'server/deploy/.env.example');
const composeBin = which('docker-compose');
if (!composeBin && IN_CI) test('docker-compose is installed (CI machines must have it)', () => assert.fail('apt-get install -y docker-compose'));
const skipCompose = composeBin ? false : 'docker-compose is not installed (apt-get install -y docker-compose); CI=true makes this a failure';
const dockerCli = which('docker');
const shellcheck = which('shellcheck');
if (IN_CI && !dockerCli) test('the docker CLI is installed (CI machines must have it)', () => assert.fail('apt-get install -y docker.io'));
if (IN_CI && !shellcheck) test('shellcheck is installed (CI machines must have it)', () => assert.fail('apt-get install -y shellcheck'));

type Service = Record<string, any>;

type Config = { services: Record<string, Service>; volumes?: Record<string, unknown> };
const configs = new Map<string, Promise<Config>>();
/** `docker-compose config` as JSON (the YAML it prints, read with the PyYAML docker-compose uses). */
function composeConfig(envFile: string, extra: string[] = []): Promise<Config> {
  const key = [envFile, ...extra].join(' ');
  if (!configs.has(key)) configs.set(key, loadComposeConfig(envFile, extra));
  return configs.get(key)!;
}
async function loadComposeConfig(envFile: string, extra: string[]): Promise<Config> {
  const { stdout } = await run(composeBin!, ['-f', COMPOSE_FILE, '--env-file', envFile, ...extra, 'config'], { cwd: ROOT, env: { ...process.env, DOCKER_GID: '' } });
  const json = execFileSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], { input: stdout }).toString();
  return JSON.parse(json) as Config;
}

/** The isolation-firewall service's program (server/src/firewall/cli.ts and what it alone reads). */
const FIREWALL_CLI = 'server/src/firewall/cli.ts';

/** Every environment variable server/src reads (the firewall service's CLI apart), found as test/docs/environment.ts finds them. */
function serverEnvVars(): Set<string> {
  return new Set(envReads(filesUnder(['server/src'], ['.ts']).filter((f) => !f.endsWith('.test.ts') && !f.endsWith(FIREWALL_CLI))).keys());
}

/** Every environment variable the isolation-firewall service's CLI reads. */
function firewallEnvVars(): Set<string> {
  return new Set(envReads(filesUnder(['server/src/firewall'], ['.ts']).filter((f) => f.endsWith(FIREWALL_CLI))).keys());
}

describe('docker-compose.multi.yml', { skip: skipCompose }, () => {
  test('validates with docker-compose config, with .env.example as the settings', async () => {
    const config = await composeConfig(ENV_EXAMPLE);
    assert.deepEqual(Object.keys(config.services).sort(), ['api-backend', 'docker-api-filter', 'isolation-firewall', 'nginx-proxy', 'prometheus', 'streaming-proxy-base']);
  });

  test('long-lived services: restart unless-stopped, health checks, limits, hardening', async () => {
    const { services } = await composeConfig(ENV_EXAMPLE);
    for (const name of ['nginx-proxy', 'api-backend', 'docker-api-filter', 'isolation-firewall']) {
      const s = services[name]!;
      assert.equal(s['restart'], 'unless-stopped', name);
      assert.ok(Array.isArray(s['healthcheck']?.test) && s['healthcheck'].test.length > 1, `${name} has no health check`);
      assert.ok(s['mem_limit'], `${name} has no memory limit`);
      assert.ok(Number(s['cpus']) > 0, `${name} has no CPU limit`);
      assert.ok(Number(s['pids_limit']) > 0, `${name} has no pids limit: ${JSON.stringify(s)}`);
      assert.equal(s['read_only'], true, `${name}: root filesystem not read-only`);
      assert.deepEqual(s['cap_drop'], ['ALL'], name);
      assert.ok((s['security_opt'] as string[]).includes('no-new-privileges:true'), name);
      // Retention (docs/compliance.md): rotated json-file logs, bounded in size.
      assert.deepEqual(s['logging'], { driver: 'json-file', options: { 'max-size': '10m', 'max-file': '5' } }, name);
    }
  });

  test('networking: api-backend and nginx in the host namespace on loopback, the filter with no network', async () => {
    const { services, volumes } = await composeConfig(ENV_EXAMPLE);
    const api = services['api-backend']!;
    const nginx = services['nginx-proxy']!;
    const filter = services['docker-api-filter']!;
    assert.equal(api['network_mode'], 'host');
    assert.equal(nginx['network_mode'], 'host');
    assert.equal(filter['network_mode'], 'none');
    assert.equal(api['environment']['HOST'], '127.0.0.1');
    assert.equal(api['environment']['CTLL_RUNTIME'], 'docker');
    assert.equal(api['ports'], undefined, 'the api-backend publishes nothing');
    // The engine's socket: only the filter mounts it; the api-backend talks to the filter.
    const mounts = (s: Service): string[] => ((s['volumes'] ?? []) as Array<string | { source?: string; target?: string }>).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
    assert.ok(mounts(filter).some((m) => m.includes('/var/run/docker.sock')));
    assert.ok(!mounts(api).some((m) => m.includes('docker.sock')), 'the api-backend must not mount the engine socket');
    assert.ok(!mounts(nginx).some((m) => m.includes('docker.sock')));
    assert.equal(api['environment']['DOCKER_HOST'], 'unix:///run/ctll-docker/docker.sock');
    assert.equal(filter['environment']['CTLL_FILTER_LISTEN'], '/run/ctll-docker/docker.sock');
    assert.ok(mounts(api).some((m) => /docker-api:\/run\/ctll-docker(:rw)?$/.test(m)));
    assert.ok(mounts(filter).some((m) => /docker-api:\/run\/ctll-docker(:rw)?$/.test(m)));
    assert.ok(volumes && 'docker-api' in volumes);
    // No privilege for the api-backend nor the filter (nobody, no capability); iptables' two
    // capabilities only for the isolation firewall, which shares nothing with the api-backend but
    // its status file (read-only there).
    const firewall = services['isolation-firewall']!;
    assert.equal(api['user'], '65534:65534');
    assert.equal(api['cap_add'], undefined);
    assert.equal(filter['user'], '65534:65534');
    assert.equal(filter['cap_add'], undefined);
    assert.deepEqual([...(firewall['cap_add'] as string[])].sort(), ['NET_ADMIN', 'NET_RAW']);
    assert.equal(firewall['network_mode'], 'host');
    assert.deepEqual(mounts(firewall).map((m) => m.replace(/:rw$/, '')), ['firewall-status:/run/ctll-firewall']);
    assert.ok(mounts(api).some((m) => /^firewall-status:\/run\/ctll-firewall:ro$/.test(m)), mounts(api).join(', '));
    assert.equal(api['environment']['CTLL_FIREWALL_STATUS_FILE'], firewall['environment']['CTLL_FIREWALL_STATUS_FILE']);
    assert.equal(api['depends_on']?.['isolation-firewall']?.condition, 'service_healthy');
    assert.ok(volumes && 'firewall-status' in volumes);
    // The filter checks the same image and subnet range the server is configured with.
    assert.equal(filter['environment']['CTLL_PROXY_IMAGE'], api['environment']['CTLL_PROXY_IMAGE']);
    assert.equal(filter['environment']['CTLL_SUBNET_RANGE'], api['environment']['CTLL_SUBNET_RANGE']);
    assert.ok(filter['environment']['CTLL_STACK_NAME']);
  });

  test('streaming-proxy-base is only in the build-only profile, with a build context that exists', async () => {
    const { services } = await composeConfig(ENV_EXAMPLE, ['--profile', 'build-only']);
    const base = services['streaming-proxy-base']!;
    assert.deepEqual(base['profiles'], ['build-only']);
    assert.equal(base['restart'], 'no');
    assert.ok(existsSync(base['build'].context), `${base['build'].context} is missing (it holds a tracked .gitignore)`);
    for (const name of ['nginx-proxy', 'api-backend', 'docker-api-filter', 'isolation-firewall']) assert.equal(services[name]!['profiles'], undefined, name);
  });

  test('every variable the cloud server reads is in .env.example and reaches the api-backend', async () => {
    const example = readFileSync(ENV_EXAMPLE, 'utf8');
    const { services } = await composeConfig(ENV_EXAMPLE);
    const env = services['api-backend']!['environment'] as Record<string, string>;
    // Set by the design (compose file or image), not settings.
    const fixed: Record<string, string> = { HOST: 'compose', CTLL_RUNTIME: 'compose', CTLL_FIREWALL_STATUS_FILE: 'compose', CTLL_CGROUP_ROOT: 'compose', CTLL_WEB_ROOT: 'image' };
    const problems: string[] = [];
    for (const name of [...serverEnvVars()].sort()) {
      if (name.startsWith('PROXY_')) continue; // the per-user proxy's own, set by the runtime
      if (fixed[name] === 'compose') {
        if (!(name in env)) problems.push(`${name}: fixed by the compose file, but not there`);
        continue;
      }
      if (fixed[name] === 'image') {
        const dockerfile = readFileSync(join(ROOT, 'server/deploy/docker/api-backend.scratch.Dockerfile'), 'utf8');
        if (!dockerfile.includes(`${name}=`)) problems.push(`${name}: fixed by the image, but not in its ENV`);
        continue;
      }
      if (!new RegExp(`^${name}=`, 'm').test(example)) problems.push(`${name}: not in server/deploy/.env.example`);
      if (!(name in env)) problems.push(`${name}: not passed to the api-backend in docker-compose.multi.yml`);
    }
    assert.deepEqual(problems, []);
  });

  test('every variable the isolation firewall reads is in .env.example and reaches the isolation-firewall service', async () => {
    const example = readFileSync(ENV_EXAMPLE, 'utf8');
    const { services } = await composeConfig(ENV_EXAMPLE);
    const env = services['isolation-firewall']!['environment'] as Record<string, string>;
    const fixed = new Set(['CTLL_FIREWALL_STATUS_FILE']); // shared with the api-backend, checked above
    const read = [...firewallEnvVars()].sort();
    assert.ok(read.includes('CTLL_FIREWALL_INTERVAL_MS'), `${FIREWALL_CLI} reads none of its variables? found: ${read.join(', ')}`);
    const problems: string[] = [];
    for (const name of read) {
      if (!(name in env)) problems.push(`${name}: not passed to the isolation-firewall service in docker-compose.multi.yml`);
      if (!fixed.has(name) && !new RegExp(`^${name}=`, 'm').test(example)) problems.push(`${name}: not in server/deploy/.env.example`);
    }
    assert.deepEqual(problems, []);
  });
});

describe('the deployment scripts', () => {
  test('render-nginx-conf.sh refuses values that would inject nginx configuration', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctll-render-'));
    try {
      const render = (args: string[]): Promise<string> =>
        run(join(ROOT, 'scripts/deploy/render-nginx-conf.sh'), ['--out', join(dir, 'out'), ...args]).then(
          () => 'ok',
          (e: { stderr?: string }) => `refused: ${e.stderr ?? ''}`,
        );
      assert.equal(await render(['--server-name', 'cloud.example.com']), 'ok');
      assert.match(await render(['--server-name', 'a.example; include /etc/passwd']), /^refused: .*not a host name/);
      assert.match(await render(['--server-name', 'ok.example', '--upstream', '127.0.0.1:80; }']), /^refused: .*HOST:PORT/);
      assert.match(await render(['--server-name', 'ok.example', '--listen', '0.0.0.0;']), /^refused: .*listen address/);
      assert.match(await render(['--server-name', 'ok.example', '--tls-cert', '/etc/x.pem;']), /^refused: .*absolute path/);
      assert.match(await render(['--server-name', 'ok.example', '--https-port', '70000']), /^refused: .*port number/);
      assert.match(await render(['--server-name', 'ok.example', '--hsts-max-age', '1; preload']), /^refused: .*HSTS_MAX_AGE/);
      assert.match(await render([]), /^refused: .*no server name/);
      // Nothing left unrendered.
      await render(['--server-name', 'cloud.example.com']);
      const all = readdirSync(join(dir, 'out'), { recursive: true }).map(String).filter((f) => f.endsWith('.conf'));
      assert.ok(all.length >= 5, all.join(', '));
      for (const f of all) assert.doesNotMatch(readFileSync(join(dir, 'out', f), 'utf8'), /\{\{[A-Z_]+\}\}/, f);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('deploy-multi-container.sh names every missing setting at once, and --dry-run changes nothing', { skip: dockerCli && composeBin ? false : 'needs the docker CLI and docker-compose; CI=true makes their absence a failure' }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ctll-deploy-dry-'));
    try {
      const envFile = join(dir, 'env');
      copyFileSync(ENV_EXAMPLE, envFile);
      const deploy = (args: string[]): Promise<{ code: number; out: string }> =>
        run(join(ROOT, 'scripts/deploy/deploy-multi-container.sh'), ['--env-file', envFile, ...args], { env: { ...process.env, NO_COLOR: '1' } }).then(
          (r) => ({ code: 0, out: r.stdout + r.stderr }),
          (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: (e.stdout ?? '') + (e.stderr ?? '') }),
        );
      const engine = await run('docker', ['info']).then(() => true, () => false);
      if (!engine) {
        // The script stops at its prerequisites without an engine: nothing else to check here.
        assert.ok(!IN_CI, 'CI machines must have a Docker engine');
        t.skip('no Docker engine: the script stops at its prerequisites');
        return;
      }
      // The example has no Auth0: refused, naming what to set.
      const refused = await deploy(['--dry-run', '--self-signed']);
      assert.equal(refused.code, 1, refused.out);
      assert.match(refused.out, /AUTH0_DOMAIN is not set/);
      // Filled in, with a state directory of our own: a dry run prints the plan, writes nothing.
      const state = join(dir, 'state');
      writeFileSync(
        envFile,
        readFileSync(envFile, 'utf8')
          .replace(/^AUTH0_DOMAIN=.*$/m, 'AUTH0_DOMAIN=tenant.example.auth0.com')
          .replace(/^AUTH0_AUDIENCE=.*$/m, 'AUTH0_AUDIENCE=https://api.cloud.example.com')
          .replace(/^AUTH0_DESKTOP_CLIENT_ID=.*$/m, 'AUTH0_DESKTOP_CLIENT_ID=abc123')
          .replace(/^CTLL_STATE_DIR=.*$/m, `CTLL_STATE_DIR=${state}`)
          .replace(/^CTLL_STACK_NAME=.*$/m, 'CTLL_STACK_NAME=ctll-dry-run-test'),
      );
      const before = readFileSync(envFile, 'utf8');
      const planned = await deploy(['--dry-run', '--build', '--self-signed']);
      assert.equal(planned.code, 0, planned.out);
      assert.match(planned.out, /\[dry-run\] .*docker-compose .* up -d --remove-orphans/);
      assert.match(planned.out, /would generate METRICS_TOKEN/);
      // The kernel limits are planned, never lowered, and not written on a dry run.
      const kernel = /would write \/etc\/sysctl\.d\/60-cloudtolocalllm\.conf: (.*)/.exec(planned.out)?.[1] ?? '';
      for (const [key, want] of Object.entries(RECOMMENDED_SYSCTLS)) {
        const planned = Number(new RegExp(`${key.replace(/\./g, '\\.')} = (\\d+)`).exec(kernel)?.[1]);
        assert.ok(planned >= want, `${key}: planned ${planned}, recommended ${want}`);
      }
      assert.ok(!existsSync(state), 'a dry run created the state directory');
      assert.equal(readFileSync(envFile, 'utf8'), before, 'a dry run changed the settings file');
      // And no container of that stack exists.
      const { stdout } = await run('docker', ['ps', '-aq', '--filter', 'label=com.docker.compose.project=ctll-dry-run-test']);
      assert.equal(stdout.trim(), '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the deploy script's kernel settings are the ones the server checks for (host-limits.ts)", () => {
    const script = readFileSync(join(ROOT, 'scripts/deploy/deploy-multi-container.sh'), 'utf8');
    const block = /WANT_SYSCTLS=\(([^)]*)\)/.exec(script)?.[1] ?? '';
    const inScript = Object.fromEntries(block.trim().split(/\s+/).map((l) => [l.split('=')[0], Number(l.split('=')[1])]));
    assert.deepEqual(inScript, RECOMMENDED_SYSCTLS);
  });

  test('shellcheck finds nothing in scripts/deploy and scripts/build-proxy-image.sh', { skip: shellcheck ? false : 'shellcheck is not installed (apt-get install -y shellcheck); CI=true makes this a failure' }, async () => {
    const scripts = [...readdirSync(join(ROOT, 'scripts/deploy')).filter((f) => f.endsWith('.sh')).map((f) => join(ROOT, 'scripts/deploy', f)), join(ROOT, 'scripts/build-proxy-image.sh')];
    const result = await run('shellcheck', ['-x', ...scripts], { cwd: ROOT }).then(
      () => '',
      (e: { stdout?: string }) => e.stdout ?? 'failed',
    );
    assert.equal(result, '', result);
    assert.ok(scripts.map((s) => relative(ROOT, s)).includes('scripts/deploy/deploy-multi-container.sh'));
  });
});
