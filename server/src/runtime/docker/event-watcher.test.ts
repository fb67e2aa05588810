import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import Docker from 'dockerode';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { DockerRuntime, describeExit } from './docker-runtime.js';
import { EventWatcher, type EngineEvent } from './event-watcher.js';

/** An engine whose /events answers are streams the test writes to. */
function fakeEvents() {
  const calls: Array<{ since?: number; filters?: unknown }> = [];
  const streams: PassThrough[] = [];
  let failNext = 0;
  const docker = {
    async getEvents(options: { since?: number; filters?: unknown }) {
      calls.push(options);
      if (failNext > 0) {
        failNext--;
        throw new Error('connect ECONNREFUSED /var/run/docker.sock');
      }
      const stream = new PassThrough();
      streams.push(stream);
      return stream;
    },
  };
  return { docker, calls, streams, failNext: (n: number) => (failNext = n) };
}

const line = (e: Partial<EngineEvent> & { id: string; action: string; t: number; attrs?: Record<string, string> }) =>
  JSON.stringify({ Type: 'container', Action: e.action, Actor: { ID: e.id, Attributes: e.attrs ?? {} }, time: Math.floor(e.t / 1e9), timeNano: e.t }) + '\n';

test('EventWatcher parses events split across chunks, reconnects with `since`, drops replayed duplicates', async (t) => {
  const engine = fakeEvents();
  // The watcher's retry timer is unref'd (it must not keep a server alive); this test waits on it.
  const keepAlive = setInterval(() => {}, 1000);
  t.after(() => clearInterval(keepAlive));
  const watcher = new EventWatcher(engine.docker as unknown as Pick<Dockerode, 'getEvents'>, {
    filters: { label: ['x=y'] },
    minBackoffMs: 5,
  });
  const seen: string[] = [];
  watcher.on('event', (e) => seen.push(`${e.Actor.ID}:${e.Action}`));
  watcher.start();
  await watcher.ready;
  assert.deepEqual(engine.calls[0], { filters: { label: ['x=y'] } });
  const t0 = (Date.now() + 1000) * 1e6; // after the watcher connected
  const first = line({ id: 'a', action: 'die', t: t0 });
  engine.streams[0]!.write(first.slice(0, 10));
  engine.streams[0]!.write(first.slice(10) + line({ id: 'b', action: 'oom', t: t0 + 1000 }).trimEnd());
  engine.streams[0]!.write('\nnot json\n');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ['a:die', 'b:oom']);

  // The engine restarts: the stream ends, the next attempt fails, then it is back.
  engine.failNext(1);
  const disconnected = once(watcher, 'disconnected');
  engine.streams[0]!.end();
  await disconnected;
  await once(watcher, 'connected');
  assert.equal(engine.calls.length, 3);
  assert.equal(engine.calls[2]!.since, Math.floor((t0 + 1000) / 1e9), 'asks for what it missed');
  // The replay repeats the last events; only new ones come through.
  engine.streams[1]!.write(line({ id: 'b', action: 'oom', t: t0 + 1000 }) + line({ id: 'c', action: 'die', t: t0 + 2000 }));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ['a:die', 'b:oom', 'c:die']);

  watcher.close();
  assert.equal(engine.streams[1]!.destroyed, true);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(engine.calls.length, 3, 'no reconnect after close');
});

test('describeExit says how a container ended', () => {
  assert.equal(describeExit(137, true), 'exit code 137, OOM-killed');
  assert.equal(describeExit(137, false), 'exit code 137, killed with SIGKILL');
  assert.equal(describeExit(143, false), 'exit code 143, terminated with SIGTERM');
  assert.equal(describeExit(2, false), 'exit code 2');
  assert.equal(describeExit(undefined, false), 'exit code unknown');
});

test('DockerRuntime turns engine events into `exit` (OOM noticed, unlabelled and foreign events ignored)', async () => {
  const engine = fakeEvents();
  const runtime = new DockerRuntime({ docker: engine.docker as unknown as Docker });
  // The runtime starts watching when it is made; its first call is a few turns of the event loop away.
  while (engine.streams.length === 0) await new Promise((r) => setImmediate(r));
  assert.deepEqual(engine.calls[0]?.filters, {
    type: ['container'],
    label: ['cloudtolocalllm.type=streaming-proxy'],
    event: ['die', 'oom'],
  });
  const exits: Array<[string, string]> = [];
  runtime.on('exit', (hash, reason) => exits.push([hash, reason]));
  const alice = userHash('alice');
  const bob = userHash('bob');
  const owner = (h: string) => ({ 'cloudtolocalllm.owner': h, 'cloudtolocalllm.type': 'streaming-proxy' });
  const t = Date.now() * 1e6;
  const s = engine.streams[0]!;
  s.write(line({ id: 'c1', action: 'oom', t, attrs: owner(alice) }));
  s.write(line({ id: 'c1', action: 'die', t: t + 1, attrs: { ...owner(alice), exitCode: '137' } }));
  s.write(line({ id: 'c2', action: 'die', t: t + 2, attrs: { ...owner(bob), exitCode: '1' } }));
  s.write(line({ id: 'c3', action: 'die', t: t + 3, attrs: { 'cloudtolocalllm.owner': 'not-a-hash', exitCode: '1' } }));
  s.write(line({ id: 'c4', action: 'start', t: t + 4, attrs: owner(bob) }));
  // A SIGKILL without an OOM report waits a moment for one, then says "killed".
  s.write(line({ id: 'c5', action: 'die', t: t + 5, attrs: { ...owner(bob), exitCode: '137' } }));
  // The delayed SIGKILL report comes last: once it is there, every event before it was handled.
  while (exits.length < 3) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(exits, [
    [alice, 'the proxy container died (exit code 137, OOM-killed)'],
    [bob, 'the proxy container died (exit code 1)'],
    [bob, 'the proxy container died (exit code 137, killed with SIGKILL)'],
  ]);
  await runtime.close();
  assert.equal(s.destroyed, true);
});
