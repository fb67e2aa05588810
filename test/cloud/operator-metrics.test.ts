/**
 * The operator's view on a real Docker engine (issue 15): one cloud server on the Docker runtime
 * with two users, one streaming and one idle. Their memory and CPU in /metrics (read from the
 * cgroup files) against `docker stats --no-stream`; a proxy that tries to reach the other user's
 * proxy raises the firewall's refusal counter of its own user hash only; and a real Prometheus
 * (Debian's package) started with the project's scrape configuration scrapes the server, with the
 * token from a credentials file, and loads the alert rules.
 * Skipped without a Docker engine or Prometheus, except in CI (CI=true), where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { dockerEngineSkip } from './docker-engine.js';
import { waitForState, waitUntil } from '../tunnel/harness.js';
import { bearer, startCloud, type Cloud } from './cloud-harness.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MONITORING = join(ROOT, 'server/deploy/monitoring');
const MiB = 1024 * 1024;
const TOKEN = randomBytes(24).toString('hex');
const engine = await dockerEngineSkip();
const prometheus = await run('prometheus', ['--version']).then(
  () => false as const,
  () => 'prometheus is not installed (apt-get install prometheus)',
);
if (prometheus && process.env['CI'] === 'true') test('prometheus is installed (CI machines must have it)', () => assert.fail(prometheus));
const skip = engine || prometheus;

const RUN = randomBytes(3).toString('hex');
const streamer = `t${RUN}-streamer`;
const idler = `t${RUN}-idler`;

async function docker(...args: string[]): Promise<string> {
  return (await run('docker', args, { maxBuffer: 16 << 20 })).stdout.trim();
}
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}
/** A series' value from the exposition text, or undefined when it is not there. */
function value(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{${labels}} ` : `${name} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}
/** `12.5MiB` and friends, as docker stats prints them, in bytes. */
const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: MiB, GiB: 1024 * MiB };
function bytes(text: string): number {
  const m = /^([\d.]+)(B|KiB|MiB|GiB)$/.exec(text.trim());
  if (!m) throw new Error(`not a docker stats size: ${text}`);
  return Number(m[1]) * UNITS[m[2]!]!;
}

describe('the operator\'s view on Docker', { skip, concurrency: false }, () => {
  let emulator: OllamaEmulator;
  let cloud: Cloud;
  let stream: AbortController | undefined;
  const scrape = async (): Promise<string> => {
    const res = await fetch(`${cloud.url}/metrics`, { headers: bearer(TOKEN) });
    assert.equal(res.status, 200);
    return res.text();
  };

  before(async () => {
    await run('bash', [`${ROOT}/scripts/build-proxy-image.sh`], { cwd: ROOT, maxBuffer: 16 << 20 });
    // No pause between tokens: the streaming proxy relays as fast as it can, up to its CPU quota.
    emulator = new OllamaEmulator({ tokenIntervalMs: 0 });
    await emulator.start();
    cloud = await startCloud({ runtime: 'docker', env: { METRICS_TOKEN: TOKEN, CTLL_EDGE_PORT: '0' } });
    for (const id of [streamer, idler]) {
      const token = await cloud.signIn(id);
      assert.equal((await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(token) })).status, 201);
      if (id !== streamer) continue;
      const bridge = cloud.bridge(token, emulator.url);
      bridge.start();
      await waitForState(bridge, 'connected', 60_000);
      await waitUntil(() => cloud.server.manager.view(streamer).bridgeConnected, 'the server sees the bridge', 30_000);
      stream = new AbortController();
      const res = await fetch(`${cloud.url}/ollama/api/generate`, {
        method: 'POST',
        headers: { ...bearer(token), 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama3.2', prompt: 'go on', stream: true, options: { num_predict: 100_000_000 } }),
        signal: stream.signal,
      });
      assert.equal(res.status, 200);
      // Read it (and drop it) until the test aborts it: the proxy keeps relaying.
      void (async () => {
        try {
          for await (const _ of res.body!) void _;
        } catch {
          // aborted
        }
      })();
    }
  });
  after(async () => {
    stream?.abort();
    await cloud?.close();
    await emulator?.close();
    for (const id of [streamer, idler]) {
      await docker('rm', '-f', `ctll-proxy-${userHash(id)}`).catch(() => '');
      await docker('network', 'rm', `ctll-net-${userHash(id)}`).catch(() => '');
    }
  });

  test('memory and CPU per proxy match docker stats for a streaming user and an idle one', async (t) => {
    const s = userHash(streamer);
    const i = userHash(idler);
    // Two scrapes at least 2 s apart (the sampler's cache) around docker stats' own sampling.
    const first = await scrape();
    assert.equal(value(first, 'ctll_proxy_memory_bytes', 'stat="count"'), 2);
    assert.equal(value(first, 'ctll_proxy_resources_unreadable'), 0, 'both proxies\' cgroup files were found');
    const began = Date.now();
    const stats = await docker('stats', '--no-stream', '--format', '{{.Name}} {{.CPUPerc}} {{.MemUsage}}', `ctll-proxy-${s}`, `ctll-proxy-${i}`);
    await waitUntil(() => Date.now() - began >= 2_100, 'the sampler cache expired', 5_000);
    const second = await scrape();
    const theirs = new Map(
      stats.split('\n').map((line) => {
        const [name, cpu, used] = line.split(' ');
        return [name!.replace('ctll-proxy-', ''), { cpu: Number(cpu!.replace('%', '')) / 100, memory: bytes(used!) }] as const;
      }),
    );
    for (const [who, hash] of [['streaming', s], ['idle', i]] as const) {
      const ours = { memory: value(second, 'ctll_proxy_top_memory_bytes', `user_hash="${hash}"`), cpu: value(second, 'ctll_proxy_top_cpu_cores', `user_hash="${hash}"`) };
      const docker = theirs.get(hash)!;
      t.diagnostic(`${who}: ours ${(ours.memory! / MiB).toFixed(1)} MiB ${ours.cpu?.toFixed(3)} cores, docker stats ${(docker.memory / MiB).toFixed(1)} MiB ${docker.cpu.toFixed(3)} cores`);
      assert.ok(ours.memory !== undefined && ours.memory > MiB, `${who}: a memory figure`);
      assert.ok(Math.abs(ours.memory - docker.memory) <= Math.max(3 * MiB, 0.15 * docker.memory), `${who}: memory within 15% (or 3 MiB) of docker stats`);
      assert.ok(ours.cpu !== undefined, `${who}: a CPU figure`);
      assert.ok(Math.abs(ours.cpu - docker.cpu) <= 0.1 + 0.3 * docker.cpu, `${who}: CPU within 0.1 core + 30% of docker stats`);
    }
    // The two are far apart: a figure given to the wrong user, or the same for both, fails here.
    const cpu = (h: string): number => value(second, 'ctll_proxy_top_cpu_cores', `user_hash="${h}"`)!;
    // (Relative, not a fixed share of a core: on a loaded 2-core machine the stream is slower.)
    assert.ok(cpu(s) > 0.05 && cpu(s) > 4 * cpu(i) + 0.03, `the streaming proxy works (${cpu(s)} cores), the idle one does not (${cpu(i)})`);
    assert.ok(cpu(i) < 0.05, `the idle proxy does not work (${cpu(i)} cores)`);
    assert.ok(theirs.get(s)!.cpu > 3 * theirs.get(i)!.cpu + 0.03, 'docker stats sees the same difference');
    assert.equal(value(second, 'ctll_proxy_limit', 'resource="memory"'), 512 * MiB, 'the limits come from the container spec');
    assert.equal(value(second, 'ctll_proxy_limit', 'resource="cpu"'), 0.5);
  });

  test('a proxy that tries to reach another user\'s proxy raises the refusal counter of its own user hash', async () => {
    const prober = userHash(idler);
    const target = userHash(streamer);
    // The first scrapes add the counting rules for the proxies' bridges.
    let before: string | undefined;
    await waitUntil(async () => {
      before = await scrape();
      return value(before, 'ctll_firewall_refused_packets_by_user', `user_hash="${prober}"`) !== undefined && value(before, 'ctll_firewall_refused_packets_by_user', `user_hash="${target}"`) !== undefined;
    }, 'both users\' bridges are counted', 30_000);
    const mine = value(before!, 'ctll_firewall_refused_packets_by_user', `user_hash="${prober}"`)!;
    const theirs = value(before!, 'ctll_firewall_refused_packets_by_user', `user_hash="${target}"`)!;
    const tcp = value(before!, 'ctll_firewall_refused_packets', 'rule="tcp"')!;
    const address = new URL(cloud.server.manager.record(target)!.instance!.endpoint);
    const probe = `require('net').connect(${address.port}, '${address.hostname}').on('connect', () => { console.log('connected'); process.exit(1); }).on('error', (e) => { console.log(e.code); process.exit(0); })`;
    assert.equal(await docker('exec', `ctll-proxy-${prober}`, '/usr/bin/node', '-e', probe), 'ECONNREFUSED');
    let after = '';
    await waitUntil(async () => {
      after = await scrape();
      return value(after, 'ctll_firewall_refused_packets_by_user', `user_hash="${prober}"`)! > mine;
    }, 'the prober\'s refusal counter rose', 30_000);
    assert.ok(value(after, 'ctll_firewall_refused_packets', 'rule="tcp"')! > tcp, 'so did the TCP rule\'s');
    assert.equal(value(after, 'ctll_firewall_refused_packets_by_user', `user_hash="${target}"`), theirs, 'the target user\'s counter did not move');
  });

  test('Prometheus with the project\'s scrape configuration scrapes the server and loads the rules', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ctll-prometheus-'));
    let child: ChildProcess | undefined;
    t.after(async () => {
      if (child && child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      rmSync(dir, { recursive: true, force: true });
    });
    writeFileSync(join(dir, 'token'), TOKEN, { mode: 0o600 });
    const config = readFileSync(join(MONITORING, 'prometheus.yml'), 'utf8')
      .replace('credentials_file: /run/ctll-prometheus/metrics-token', `credentials_file: ${join(dir, 'token')}`)
      .replace("targets: ['127.0.0.1:8080']", `targets: ['${new URL(cloud.url).host}']`)
      .replace('scrape_interval: 15s', 'scrape_interval: 1s')
      .replace('- rules.yml', `- ${join(MONITORING, 'rules.yml')}`);
    assert.ok(config.includes(join(dir, 'token')) && config.includes(new URL(cloud.url).host), 'the test changed only the addresses of the project\'s configuration');
    writeFileSync(join(dir, 'prometheus.yml'), config);
    const port = await freePort();
    child = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const api = async (path: string): Promise<any> => (await (await fetch(`http://127.0.0.1:${port}${path}`)).json());
    try {
      await waitUntil(async () => {
        const targets = await api('/api/v1/targets').catch(() => undefined);
        return targets?.data?.activeTargets?.[0]?.health === 'up';
      }, 'the target is up', 60_000);
      await waitUntil(async () => {
        const q = await api(`/api/v1/query?query=${encodeURIComponent('ctll_proxy_memory_bytes{stat="count"}')}`);
        return q?.data?.result?.[0]?.value?.[1] === '2';
      }, 'a series of ours is scraped', 30_000);
      // A stop for the stop panels: the idle user's proxy, stopped as a user stops it.
      const stopped = await fetch(`${cloud.url}/api/proxy/stop`, { method: 'POST', headers: bearer(await cloud.signIn(idler)) });
      assert.equal(stopped.status, 200, await stopped.text());
      // Edge routing's panel: nginx's question for the streaming user's next request, asked as
      // nginx asks it (docs/edge-routing.md); the answer names that user's proxy container.
      const route = await fetch(`${cloud.server.edgeUrl!}/edge/route`, {
        headers: { ...bearer(await cloud.signIn(streamer)), 'x-original-uri': '/ollama/api/tags', 'x-original-content-length': '' },
      });
      assert.equal(route.status, 204);
      assert.equal(`http://${route.headers.get('x-ctll-upstream')}`, cloud.server.manager.record(userHash(streamer))!.instance!.endpoint);
      const rules = await api('/api/v1/rules');
      const loaded = (rules.data.groups as Array<{ rules: unknown[] }>).reduce((n, g) => n + g.rules.length, 0);
      assert.equal(loaded, 7, 'the alert rules are loaded');
      // The dashboard's queries, evaluated by this Prometheus on what it scraped: each is valid
      // PromQL and finds series (a renamed metric or label would leave a panel empty, not fail).
      const dashboard = JSON.parse(readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
      const empty: string[] = [];
      await waitUntil(async () => {
        empty.length = 0;
        for (const panel of dashboard.panels) {
          for (const { expr } of panel.targets) {
            const q = await api(`/api/v1/query?query=${encodeURIComponent(expr)}`);
            assert.equal(q.status, 'success', `panel "${panel.title}": ${expr}: ${q.error}`);
            if (q.data.result.length === 0) empty.push(`${panel.title}: ${expr}`);
          }
        }
        if (empty.length > 0) await new Promise((r) => setTimeout(r, 500));
        return empty.length === 0;
      }, 'every dashboard query finds series', 30_000).catch((e: Error) => {
        throw new Error(`${e.message}; empty: ${empty.join('; ')}`);
      });
    } catch (e) {
      t.diagnostic(`prometheus said: ${log}`);
      throw e;
    }
  });
});
