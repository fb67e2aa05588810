/**
 * The whole multi-container stack on this machine's Docker engine, as an operator deploys it:
 * scripts/deploy/deploy-multi-container.sh --build --self-signed --trial builds the images
 * offline (FROM scratch: no registry here), renders nginx's configuration, makes a certificate
 * and brings up nginx-proxy, api-backend, docker-api-filter and isolation-firewall with
 * docker-compose. Then a user
 * signs in, the bridge CLI connects through nginx, and a token stream travels
 *   client -TLS-> nginx -> api-backend -> the user's proxy container -> bridge -> Ollama emulator
 * and back. Then: the api-backend's lack of privilege (not root, no capability) while the isolation
 * firewall still holds; nothing of a chat (prompt, answer, token, proxy secret) in any log or container
 * filesystem; the audit log, /metrics, the Docker API filter seen from inside the api-backend,
 * idempotence of a second run, the build-only profile, a subject access and erasure request
 * (scripts/deploy/data-request.sh) on the running stack, and --down, which must leave nothing.
 *
 * Everything is in its own compose project and labelled with its own stack name: other stacks,
 * tests and benchmarks on the same engine are never touched.
 * Skipped without a Docker engine or docker-compose, except in CI (CI=true), where that fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { DEFAULT_AUDIENCE } from '@cloudtolocalllm/server/config';
import { RECOMMENDED_SYSCTLS, sysctlPath } from '@cloudtolocalllm/server/runtime/docker/host-limits';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { expectedText, OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { freePort, headerCount, httpsRequest, httpsStream, IN_CI, ROOT, run, startBridgeProcess, which, type BridgeProcess } from './deploy-harness.js';

const composeBin = which('docker-compose');
const engine = await run('docker', ['info']).then(
  () => true,
  () => false,
);
const missing = [!engine && 'a Docker engine', !composeBin && 'docker-compose (apt-get install -y docker-compose)', !which('openssl') && 'openssl'].filter(Boolean).join(', ');
if (missing && IN_CI) test('Docker, docker-compose and openssl are available (CI machines must have them)', () => assert.fail(`missing: ${missing}`));
const skip = missing ? `missing on this machine: ${missing}; CI=true makes this a failure` : false;

const DEPLOY = join(ROOT, 'scripts/deploy/deploy-multi-container.sh');
const COMPOSE_FILE = join(ROOT, 'server/deploy/docker-compose.multi.yml');

describe('the multi-container stack, deployed by the deploy script', { skip, concurrency: false }, () => {
  const stack = `ctll-stack-test-${randomBytes(3).toString('hex')}`;
  const buildOnlyImage = `${stack}/streaming-proxy:build-only`;
  let dir: string;
  let envFile: string;
  let state: string;
  let ports: { https: number; http: number; health: number; api: number; issuer: number };
  let deployOutput = '';
  let deployMs = 0;
  let emulator: OllamaEmulator;
  let bridge: BridgeProcess | undefined;
  let ca: Buffer;
  let token: string;
  let username: string;
  let down = false;

  const deploy = async (args: string[], timeoutMs = 600_000): Promise<string> => {
    try {
      // The kernel settings go to a file of this test's (the script still raises the live values).
      const env = { ...process.env, NO_COLOR: '1', CTLL_SYSCTL_FILE: join(dir, '60-cloudtolocalllm.conf') };
      const r = await run(DEPLOY, ['--env-file', envFile, ...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 32 << 20, env });
      return r.stdout + r.stderr;
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`${DEPLOY} ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
  };
  const compose = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> =>
    run(composeBin!, ['-f', COMPOSE_FILE, '-p', stack, '--env-file', envFile, ...args], { cwd: ROOT, maxBuffer: 32 << 20, env: { ...process.env, ...env } }).then((r) => r.stdout + r.stderr);
  const containerOf = async (service: string): Promise<string> => (await compose(['ps', '-q', service])).trim();
  /** The network a proxy container joined: its user's, or the spare's it was taken from (CTLL_PROXY_SPARES). */
  const networkOf = async (container: string): Promise<string> => docker('inspect', '--format', '{{.HostConfig.NetworkMode}}', container);
  const docker = async (...args: string[]): Promise<string> => (await run('docker', args, { maxBuffer: 16 << 20 })).stdout.trim();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctll-stack-'));
    chmodSync(dir, 0o755);
    state = join(dir, 'state');
    ports = { https: await freePort(), http: await freePort(), health: await freePort(), api: await freePort(), issuer: await freePort() };
    envFile = join(dir, 'env');
    writeFileSync(
      envFile,
      [
        'DOMAIN=localhost',
        `HTTPS_PORT=${ports.https}`,
        `HTTP_PORT=${ports.http}`,
        'NGINX_LISTEN_ADDRESSES=127.0.0.1',
        `NGINX_HEALTH_PORT=${ports.health}`,
        `PORT=${ports.api}`,
        `CTLL_ISSUER_PORT=${ports.issuer}`,
        `CTLL_STACK_NAME=${stack}`,
        `CTLL_STATE_DIR=${state}`,
        'CTLL_SUBNET_RANGE=10.233.0.0/16',
        'CTLL_FIREWALL=enforce',
        'CTLL_KEEP_PROXIES_ON_EXIT=1',
        'METRICS_TOKEN=',
        '',
      ].join('\n'),
    );
    emulator = new OllamaEmulator({ tokenIntervalMs: 150 });
    await emulator.start();
    const started = Date.now();
    deployOutput = await deploy(['--build', '--self-signed', '--trial']);
    deployMs = Date.now() - started;
    ca = readFileSync(join(state, 'tls/fullchain.pem'));
  });

  after(async () => {
    await bridge?.stop();
    await emulator?.close();
    if (!down && envFile) await deploy(['--down']).catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
    await run('docker', ['rmi', '-f', buildOnlyImage]).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the deploy script builds the images offline and brings the stack up healthy', async (t) => {
    t.diagnostic(`deploy --build --self-signed --trial took ${(deployMs / 1000).toFixed(1)} s`);
    assert.match(deployOutput, /all services healthy/);
    assert.match(deployOutput, /\/health through nginx: \{"status":"ok","runtime":"docker"/);
    for (const service of ['isolation-firewall', 'docker-api-filter', 'api-backend', 'nginx-proxy']) {
      const id = await containerOf(service);
      assert.ok(id, `${service} is not running`);
      assert.equal(await docker('inspect', '--format', '{{.State.Health.Status}} {{.HostConfig.RestartPolicy.Name}}', id), 'healthy unless-stopped', service);
    }
    // The build-only service is never started.
    assert.equal(await containerOf('streaming-proxy-base'), '');
    // The offline images: FROM scratch, this machine's node and nginx.
    assert.equal(await docker('image', 'inspect', '--format', '{{ index .Config.Labels "cloudtolocalllm.image-base" }}', 'cloudtolocalllm/api-backend:local'), 'scratch');
    // A generated METRICS_TOKEN was written back to the settings.
    assert.match(readFileSync(envFile, 'utf8'), /^METRICS_TOKEN=[0-9a-f]{64}$/m);
    // The kernel limits for many proxies: in the sysctl file and in force, at least the recommended values.
    const sysctlFile = readFileSync(join(dir, '60-cloudtolocalllm.conf'), 'utf8');
    for (const [key, want] of Object.entries(RECOMMENDED_SYSCTLS)) {
      const written = Number(new RegExp(`^${key.replace(/\./g, '\\.')} = (\\d+)$`, 'm').exec(sysctlFile)?.[1]);
      assert.ok(written >= want, `${key} = ${written} in the sysctl file`);
      assert.ok(Number(readFileSync(sysctlPath(key), 'utf8')) >= want, `${key} in force`);
    }
  });

  test('a user signs in, the bridge connects through nginx, and tokens stream end to end through their proxy container', { timeout: 240_000 }, async (t) => {
    const config = await httpsRequest({ port: ports.https, path: '/api/config', ca });
    assert.equal(config.status, 200, config.body);
    const { issuer, audience, desktopClientId } = JSON.parse(config.body) as { issuer: string; audience: string; desktopClientId: string };
    assert.equal(issuer, `http://127.0.0.1:${ports.issuer}`);
    assert.equal(audience, DEFAULT_AUDIENCE);
    username = `stack-user-${randomBytes(3).toString('hex')}`;
    token = (await headlessSignIn({ issuer, clientId: desktopClientId, audience, username })).accessToken;

    const connectStarted = Date.now();
    bridge = await startBridgeProcess({
      proxyUrl: `wss://localhost:${ports.https}/ws/bridge`,
      token,
      ollamaUrl: emulator.url,
      caFile: join(state, 'tls/fullchain.pem'),
      timeoutMs: 180_000,
    });
    t.diagnostic(`bridge connected (proxy container provisioned) in ${((Date.now() - connectStarted) / 1000).toFixed(1)} s`);

    const tokens = 20;
    let stillGenerating: boolean | undefined;
    const result = await httpsStream({
      port: ports.https,
      path: '/ollama/api/generate',
      body: { model: 'llama3.2', prompt: 'through the whole stack', options: { num_predict: tokens } },
      token,
      ca,
      onLine: () => {
        if (stillGenerating !== undefined) return;
        const record = emulator.requests.findLast((r) => r.path === '/api/generate');
        stillGenerating = record !== undefined && record.finishedAt === undefined;
      },
    });
    assert.equal(result.status, 200, result.lines.map((l) => l.line).join('\n'));
    const text = result.lines
      .map((l) => JSON.parse(l.line) as { response?: string; done?: boolean })
      .filter((o) => !o.done)
      .map((o) => o.response)
      .join('');
    assert.equal(text, expectedText(tokens));
    assert.equal(stillGenerating, true, 'the first token arrived only after the generation had finished');

    // The user's proxy: a hardened container of this stack on its own network.
    const name = `ctll-${stack}-proxy-${userHash(username)}`;
    const [labels, hardening] = await Promise.all([
      docker('inspect', '--format', '{{ index .Config.Labels "cloudtolocalllm.stack" }} {{ index .Config.Labels "cloudtolocalllm.type" }}', name),
      docker('inspect', '--format', '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.NetworkMode}} {{.Config.User}}', name),
    ]);
    assert.equal(labels, `${stack} streaming-proxy`);
    // Its own network: named after the user, or after the spare it was taken from (CTLL_PROXY_SPARES).
    assert.match(hardening, new RegExp(`^true \\[ALL\\] ctll-${stack}-net-[0-9a-f]{64} 1001:1001$`));
    const network = hardening.split(' ')[2]!;
    assert.equal(await docker('network', 'inspect', '--format', '{{len .Containers}}', network), '1', 'the network holds this proxy alone');
    // CTLL_FIREWALL=enforce: the proxy started, so the isolation-firewall service had installed the
    // isolation chain (iptables with CAP_NET_ADMIN in the host's namespace) and confirmed it in its
    // status file. The image's own iptables (this host's backend) sees and manages the host's rules.
    const chain = await docker('exec', await containerOf('isolation-firewall'), 'iptables', '-w', '5', '-S', 'CTLL-ISOLATION');
    assert.match(chain, /-A CTLL-ISOLATION -p tcp -j REJECT --reject-with tcp-reset/);
  });

  test('the api-backend runs unprivileged (not root, no capability); the isolation firewall still keeps its proxies in', async () => {
    /** Uid and effective capabilities of the process whose command line names `script`, read in its container. */
    const processOf = async (service: string, script: string): Promise<{ uid: string; capEff: string }> => {
      const probe = `
        const fs = require('node:fs');
        for (const pid of fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p))) {
          if (pid === String(process.pid)) continue; // this probe names the script too
          let cmd; try { cmd = fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8'); } catch { continue; }
          if (!cmd.includes(${JSON.stringify(script)})) continue;
          const status = fs.readFileSync('/proc/' + pid + '/status', 'utf8');
          console.log(JSON.stringify({ uid: /^Uid:\\s+(.*)$/m.exec(status)[1].trim().split(/\\s+/).join(' '), capEff: /^CapEff:\\s+(\\w+)$/m.exec(status)[1] }));
          process.exit(0);
        }
        process.exit(3);`;
      return JSON.parse(await docker('exec', await containerOf(service), 'node', '-e', probe)) as { uid: string; capEff: string };
    };
    // Real, effective, saved and filesystem uid: nobody; no capability at all.
    assert.deepEqual(await processOf('api-backend', '/app/server.mjs'), { uid: '65534 65534 65534 65534', capEff: '0000000000000000' });
    // The one privileged part holds CAP_NET_ADMIN (bit 12) and CAP_NET_RAW (bit 13), nothing more.
    assert.deepEqual(await processOf('isolation-firewall', '/app/isolation-firewall.mjs'), { uid: '0 0 0 0', capEff: '0000000000003000' });
    // The api-backend cannot change the rules (no CAP_NET_ADMIN), whatever it runs.
    const tamper = await run('docker', ['exec', await containerOf('api-backend'), 'iptables', '-w', '5', '-F', 'CTLL-ISOLATION']).then(
      () => 'flushed',
      (e: { stderr?: string }) => `refused: ${e.stderr ?? ''}`,
    );
    assert.match(tamper, /^refused: .*(Permission denied|not permitted|must be root)/i);
    // Isolation holds: from inside the user's proxy, a connection to the host (its own gateway, on
    // the api-backend's port) is refused at once by the rules the isolation-firewall service keeps.
    const name = `ctll-${stack}-proxy-${userHash(username)}`;
    const gateway = await docker('network', 'inspect', '--format', '{{(index .IPAM.Config 0).Gateway}}', await networkOf(`ctll-${stack}-proxy-${userHash(username)}`));
    const connect = `
      const s = require('node:net').connect(${ports.api}, ${JSON.stringify(gateway)});
      s.setTimeout(10000, () => { console.log('no answer'); process.exit(0); });
      s.on('connect', () => { console.log('connected'); process.exit(0); });
      s.on('error', (e) => { console.log(e.code); process.exit(0); });`;
    assert.equal(await docker('exec', name, 'node', '-e', connect), 'ECONNREFUSED');
  });

  test('nothing of a chat is kept: prompt, answer, token and proxy secret are in no log and on no container filesystem', { timeout: 120_000 }, async () => {
    const marker = `compliance-marker-${randomBytes(6).toString('hex')}`;
    const body = JSON.stringify({ model: 'llama3.2', stream: false, options: { num_predict: 12 }, messages: [{ role: 'user', content: `Tell me about ${marker}` }] });
    const chat = await httpsRequest({
      port: ports.https,
      path: '/ollama/api/chat',
      method: 'POST',
      ca,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body,
    });
    assert.equal(chat.status, 200, chat.body);
    const answer = (JSON.parse(chat.body) as { message: { content: string } }).message.content;
    assert.equal(answer, expectedText(12));
    const sent = createHash('sha256').update(body).digest('hex');
    assert.ok(emulator.requests.some((r) => r.path === '/api/chat' && r.bodySha256 === sent), 'the prompt did not reach Ollama whole');

    const proxy = `ctll-${stack}-proxy-${userHash(username)}`;
    const secret = /^PROXY_TOKEN=(.+)$/m.exec(await docker('inspect', '--format', '{{range .Config.Env}}{{println .}}{{end}}', proxy))?.[1];
    assert.ok(secret, 'the proxy has no PROXY_TOKEN');
    const needles: Record<string, string> = { prompt: marker, answer, 'access token': token.slice(-24), 'proxy secret': secret };
    const found = (where: string, text: string): string[] => Object.entries(needles).filter(([, v]) => text.includes(v)).map(([k]) => `${k} in ${where}`);

    // Every log Docker keeps of the stack (the api-backend's holds the audit log), and the proxy's own.
    const hits = [
      ...found('the services\' logs (docker-compose logs)', await compose(['logs', '--no-color'])),
      ...found("the proxy's log (docker logs)", await run('docker', ['logs', proxy], { maxBuffer: 16 << 20 }).then((r) => r.stdout + r.stderr)),
    ];
    // What each container wrote: its layer (docker diff: with a read-only root only the engine's
    // own mount points, such as /tmp and /sbin/docker-init) and its tmpfs, searched file by file.
    const search = `
      const fs = require('node:fs'), path = require('node:path');
      const needles = JSON.parse(process.env.NEEDLES), hits = [];
      const walk = (p) => { let st; try { st = fs.lstatSync(p); } catch { return; }
        if (st.isDirectory()) { for (const n of fs.readdirSync(p)) walk(path.join(p, n)); return; }
        if (!st.isFile() || st.size > 64 << 20) return;
        let text; try { text = fs.readFileSync(p, 'latin1'); } catch { return; }
        for (const [k, v] of Object.entries(needles)) if (text.includes(v)) hits.push(k + ' in ' + p); };
      for (const p of process.argv.slice(1)) walk(p);
      console.log(JSON.stringify(hits));`;
    const env = ['-e', `NEEDLES=${JSON.stringify(needles)}`];
    const containers: Array<[string, string]> = [
      ['the proxy', proxy],
      ['the api-backend', await containerOf('api-backend')],
      ['the docker-api-filter', await containerOf('docker-api-filter')],
      ['the isolation-firewall', await containerOf('isolation-firewall')],
    ];
    for (const [what, id] of containers) {
      const changed = (await docker('diff', id)).split('\n').filter(Boolean).map((l) => l.slice(2));
      const inside = JSON.parse(await docker('exec', ...env, id, 'node', '-e', search, '/tmp', ...changed)) as string[];
      hits.push(...inside.map((h) => `${h} (${what})`));
    }
    // nginx: its tmpfs holds the pid file and any request body it ever buffered.
    const nginx = await containerOf('nginx-proxy');
    const grep = await run('docker', ['exec', nginx, '/bin/busybox', 'grep', '-rl', '-F', ...Object.values(needles).flatMap((v) => ['-e', v]), '/tmp']).then(
      (r) => r.stdout.trim(),
      (e: { code?: number; stdout?: string; stderr?: string }) => (e.code === 1 ? '' : `grep failed: ${e.stderr ?? ''}`),
    );
    if (grep) hits.push(`${grep} (nginx-proxy)`);
    assert.deepEqual(hits, []);
  });

  test('the audit log records the proxy start and the bridge; /metrics needs METRICS_TOKEN', async () => {
    const logs = await compose(['logs', '--no-color', 'api-backend']);
    const audit = logs
      .split('\n')
      .map((l) => l.slice(l.indexOf('{')))
      .filter((l) => l.includes('"type":"audit"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const user = userHash(username);
    assert.ok(audit.some((e) => e['action'] === 'proxy.start' && e['result'] === 'ok' && e['userHash'] === user), JSON.stringify(audit));
    assert.ok(audit.some((e) => e['action'] === 'bridge.connect' && e['userHash'] === user), JSON.stringify(audit));
    assert.ok(!logs.includes(token.slice(-24)), 'a token appears in the logs');

    const metricsToken = /^METRICS_TOKEN=(.+)$/m.exec(readFileSync(envFile, 'utf8'))![1]!;
    assert.equal((await httpsRequest({ port: ports.https, path: '/metrics', ca })).status, 401);
    const metrics = await httpsRequest({ port: ports.https, path: '/metrics', ca, headers: { authorization: `Bearer ${metricsToken}` } });
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^ctll_/m);
    // Edge routing (docs/edge-routing.md): the chat above went from nginx straight to the
    // proxy container, nginx asking the api-backend's edge port (CTLL_EDGE_PORT) first.
    const direct = /^ctll_edge_routes_total\{route="direct",reason=""\} (\d+)$/m.exec(metrics.body);
    const edgeLines = metrics.body.split('\n').filter((l) => l.startsWith('ctll_edge')).join('\n') || 'no ctll_edge_routes_total';
    assert.ok(direct && Number(direct[1]) >= 1, edgeLines);
    // And so did the bridge's tunnel: nginx joined it to the proxy container, and the audit line
    // above came from the proxy's link events (edge-bridges.ts), not from a splice.
    const bridge = /^ctll_edge_routes_total\{route="direct",reason="bridge"\} (\d+)$/m.exec(metrics.body);
    assert.ok(bridge && Number(bridge[1]) >= 1, edgeLines);
    assert.match(metrics.body, /^ctll_bridges_connected [1-9]/m, 'the direct bridge is counted');
    assert.doesNotMatch(metrics.body, /^ctll_bytes_relayed_total\{direction="bridge"\} [1-9]/m, 'no tunnel byte crossed the api-backend');
  });

  test('the operator\'s figures from the unprivileged api-backend: its proxy\'s memory, the firewall\'s refusals by user (from the keeper), and --status prints them', { timeout: 120_000 }, async () => {
    const metricsToken = /^METRICS_TOKEN=(.+)$/m.exec(readFileSync(envFile, 'utf8'))![1]!;
    const user = userHash(username);
    const scrape = async (): Promise<string> => (await httpsRequest({ port: ports.https, path: '/metrics', ca, headers: { authorization: `Bearer ${metricsToken}` } })).body;
    const series = (text: string, line: string): number | undefined => {
      const found = text.split('\n').find((l) => l.startsWith(`${line} `));
      return found === undefined ? undefined : Number(found.slice(line.length + 1));
    };
    const byUser = `ctll_firewall_refused_packets_by_user{user_hash="${user}"}`;
    // Twice a second at most: every scrape goes through nginx and its per-address limits.
    const waitUntil = async (predicate: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      while (!(await predicate())) {
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    // The keeper counts a new bridge from its next check on (CTLL_FIREWALL_INTERVAL_MS) and publishes the counts in its status file.
    let text = '';
    await waitUntil(async () => series((text = await scrape()), byUser) !== undefined, 'the keeper publishes a counter for the user\'s bridge', 60_000);
    const before = series(text, byUser)!;
    // The cgroup tree reaches the api-backend read-only: the proxy's memory is there, none unreadable.
    assert.equal(series(text, 'ctll_proxy_memory_bytes{stat="count"}'), 1, text.split('\n').filter((l) => l.startsWith('ctll_proxy')).join('\n'));
    assert.equal(series(text, 'ctll_proxy_resources_unreadable'), 0);
    assert.ok(series(text, `ctll_proxy_top_memory_bytes{user_hash="${user}"}`)! > 1024 * 1024);
    const name = `ctll-${stack}-proxy-${userHash(username)}`;
    const gateway = await docker('network', 'inspect', '--format', '{{(index .IPAM.Config 0).Gateway}}', await networkOf(`ctll-${stack}-proxy-${userHash(username)}`));
    const connect = `require('node:net').connect(${ports.api}, ${JSON.stringify(gateway)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`;
    assert.equal(await docker('exec', name, 'node', '-e', connect), 'ECONNREFUSED');
    await waitUntil(async () => (series(await scrape(), byUser) ?? 0) > before, 'the refusal shows for the user\'s hash', 60_000);
    const status = await deploy(['--status']);
    assert.match(status, /ctll_proxy_memory_bytes\{stat="count"\} 1/);
    assert.match(status, new RegExp(`ctll_firewall_refused_packets_by_user\\{user_hash="${user}"\\} [1-9]`));
    assert.ok(!status.includes(metricsToken), 'the token is not printed');
  });

  test('the api-backend has no engine socket; through the filter it cannot start anything but a hardened proxy', async () => {
    const api = await containerOf('api-backend');
    const probe = `
      const http = require('node:http');
      const fs = require('node:fs');
      const call = (method, path, body) => new Promise((resolve) => {
        const req = http.request({ socketPath: '/run/ctll-docker/docker.sock', method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
          res.resume(); res.on('end', () => resolve(res.statusCode));
        });
        req.on('error', (e) => resolve(e.message));
        req.end(body);
      });
      (async () => {
        const out = { engineSocket: fs.existsSync('/var/run/docker.sock') };
        out.ping = await call('GET', '/_ping');
        out.privileged = await call('POST', '/containers/create?name=ctll-proxy-${'0'.repeat(64)}', JSON.stringify({ Image: 'cloudtolocalllm/streaming-proxy:local', HostConfig: { Privileged: true, Binds: ['/:/host'] } }));
        out.pull = await call('POST', '/images/create?fromImage=alpine&tag=latest');
        out.listAll = await call('GET', '/containers/json?all=1');
        out.exec = await call('POST', '/containers/${await containerOf('nginx-proxy')}/exec', '{"Cmd":["/bin/busybox","sh"]}');
        console.log(JSON.stringify(out));
      })();`;
    const out = JSON.parse(await docker('exec', api, 'node', '-e', probe)) as Record<string, unknown>;
    assert.deepEqual(out, { engineSocket: false, ping: 200, privileged: 403, pull: 403, listAll: 403, exec: 403 });
    const filterLogs = await compose(['logs', '--no-color', 'docker-api-filter']);
    assert.match(filterLogs, /"action":"docker.refused"/);
  });

  test('the web client and the docs are served by the api-backend through nginx', async () => {
    // `--build` builds the web client into the image (scripts/deploy/build-images.sh): a 404 is a failure.
    assert.match(deployOutput, /web client: \d+ files from server\/dist\/web/);
    const home = await httpsRequest({ port: ports.https, path: '/', ca });
    assert.equal(home.status, 200, home.body.slice(0, 200));
    assert.match(String(home.headers['content-type']), /^text\/html/);
    assert.equal(headerCount(home.rawHeaders, 'content-security-policy'), 1);
    assert.equal(headerCount(home.rawHeaders, 'x-content-type-options'), 1);
    for (const path of ['/app/', '/docs/']) {
      const page = await httpsRequest({ port: ports.https, path, ca });
      assert.equal(page.status, 200, path);
    }
  });

  test("the ACME webroot is served from the nginx container (what certbot --webroot needs)", async () => {
    mkdirSync(join(state, 'acme/.well-known/acme-challenge'), { recursive: true });
    writeFileSync(join(state, 'acme/.well-known/acme-challenge/stack-token'), 'stack-token.thumbprint');
    const res = await fetch(`http://127.0.0.1:${ports.http}/.well-known/acme-challenge/stack-token`, { headers: { host: 'localhost' } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'stack-token.thumbprint');
  });

  test("Let's Encrypt itself (certbot --ssl-setup)", { skip: "cannot run here: no internet, so Let's Encrypt can neither be reached nor reach this machine's port 80 for the HTTP-01 challenge; the webroot it uses is checked above and the hook (scripts/deploy/install-cert.sh) is plain file copies plus nginx's SIGHUP" }, () => {});

  test('alpine-based images (--base alpine)', { skip: 'cannot run here: node:20-alpine and nginx:1.27-alpine cannot be pulled (no registry reachable); the FROM scratch images with the same layout are built and run instead' }, () => {});

  test('running the deploy script again changes nothing', { timeout: 300_000 }, async () => {
    const ids = await Promise.all(['isolation-firewall', 'docker-api-filter', 'api-backend', 'nginx-proxy'].map(containerOf));
    const output = await deploy(['--self-signed', '--trial']);
    assert.match(output, /nginx configuration: unchanged/);
    assert.match(output, /self-signed certificate for localhost present/);
    assert.deepEqual(await Promise.all(['isolation-firewall', 'docker-api-filter', 'api-backend', 'nginx-proxy'].map(containerOf)), ids, 'a container was recreated');
    // The user's proxy kept running.
    assert.equal(await docker('inspect', '--format', '{{.State.Running}}', `ctll-${stack}-proxy-${userHash(username)}`), 'true');
  });

  test('the build-only profile builds the proxy base image offline from the prepared context', { timeout: 300_000 }, async () => {
    await compose(['--profile', 'build-only', 'build', 'streaming-proxy-base'], { CTLL_PROXY_IMAGE: buildOnlyImage });
    const { stdout } = await run('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'node', buildOnlyImage, '-e', 'console.log(require("node:fs").existsSync("/app/proxy.mjs"))']);
    assert.equal(stdout.trim(), 'true');
  });

  test('data-request.sh answers a subject access request and erases a user from the running stack', { timeout: 240_000 }, async () => {
    // A second user with a proxy of their own; the first user's proxy must survive the erasure.
    const other = `erase-user-${randomBytes(3).toString('hex')}`;
    const config = JSON.parse((await httpsRequest({ port: ports.https, path: '/api/config', ca })).body) as { issuer: string; audience: string; desktopClientId: string };
    const otherToken = (await headlessSignIn({ issuer: config.issuer, clientId: config.desktopClientId, audience: config.audience, username: other })).accessToken;
    const started = await httpsRequest({ port: ports.https, path: '/api/proxy/start', method: 'POST', ca, headers: { authorization: `Bearer ${otherToken}`, 'content-type': 'application/json' }, body: '{}' });
    assert.ok(started.status === 200 || started.status === 201, started.body);
    const hash = userHash(other);
    const request = async (args: string[]): Promise<string> => {
      const r = await run(join(ROOT, 'scripts/deploy/data-request.sh'), [...args, '--env-file', envFile], { env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 16 << 20 });
      return r.stdout + r.stderr;
    };

    const access = await request(['access', other]);
    assert.match(access, new RegExp(`"action":"proxy\\.start".*"userHash":"${hash}"`));
    assert.match(access, new RegExp(`proxy: ctll-${stack}-proxy-${hash} Up`));
    assert.ok(!access.includes(userHash(username)), "another user's lines were printed");

    // Refused while the services run, unless --restart.
    await assert.rejects(request(['erase', other]), /running: Docker appends to its log while it runs; rerun with --restart/);
    const erased = await request(['erase', other, '--restart']);
    assert.match(erased, new RegExp(`removed the proxy ctll-${stack}-proxy-${hash}`));
    assert.match(erased, /[1-9]\d* line\(s\) of user [0-9a-f]{64} deleted/);

    // The services are back (the api-backend healthy), nothing names the user any more, the rest is kept.
    for (let i = 0; i < 60; i++) {
      if ((await docker('inspect', '--format', '{{.State.Health.Status}}', await containerOf('api-backend'))) === 'healthy') break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal(await docker('inspect', '--format', '{{.State.Health.Status}}', await containerOf('api-backend')), 'healthy');
    const logs = await compose(['logs', '--no-color', 'api-backend', 'docker-api-filter']);
    assert.ok(!logs.includes(hash.slice(0, 12)), "the erased user's hash (or its 12-digit short form) is still in the logs");
    assert.ok(logs.includes(userHash(username)), "the other user's lines went too");
    assert.equal(await docker('ps', '-aq', '--filter', `name=ctll-${stack}-proxy-${hash}`), '');
    assert.equal(await docker('network', 'ls', '-q', '--filter', `name=ctll-${stack}-net-${hash}`), '');
    assert.equal(await docker('inspect', '--format', '{{.State.Running}}', `ctll-${stack}-proxy-${userHash(username)}`), 'true');
    assert.match(await request(['access', other]), /0 log line\(s\) name user/);
  });

  // Only objects labelled with this stack are removed: the script filters on the label.
  test('--down removes the services, the proxies of this stack and their networks', { timeout: 180_000 }, async () => {
    await bridge?.stop();
    bridge = undefined;
    const mine = await docker('ps', '-aq', '--filter', `label=cloudtolocalllm.stack=${stack}`, '--filter', 'label=cloudtolocalllm.type=streaming-proxy');
    assert.ok(mine, 'the proxy of this stack should still run (CTLL_KEEP_PROXIES_ON_EXIT=1)');
    await deploy(['--down']);
    down = true;
    assert.equal(await docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${stack}`), '');
    assert.equal(await docker('ps', '-aq', '--filter', `label=cloudtolocalllm.stack=${stack}`), '');
    assert.equal(await docker('network', 'ls', '-q', '--filter', `label=cloudtolocalllm.stack=${stack}`), '');
    assert.equal(await docker('volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${stack}`), '');
  });
});
