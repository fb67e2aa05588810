/**
 * The client side of the benchmark: the same four workloads against any base URL. Every path
 * gets its own keep-alive agent, so what is measured is the path, not TCP handshakes.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import { quantile } from './stats.js';

export interface Target {
  name: string;
  url: URL;
  /** The base URL's path without its trailing slash ('' for a bare origin): request paths go under it. */
  prefix: string;
  agent: http.Agent;
  /** Extra request headers (the tunnel's bearer token). */
  headers: Record<string, string>;
  /** Distinct client connections opened so far (sanity check for keep-alive). */
  connections: number;
  seen: WeakSet<Socket>;
}

/** `baseUrl` may carry a path prefix (the api-backend's `/ollama`): every request path goes under it. */
export function makeTarget(name: string, baseUrl: string, headers: Record<string, string> = {}): Target {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, scheduling: 'lifo' });
  const url = new URL(baseUrl);
  const target: Target = { name, url, prefix: url.pathname.replace(/\/+$/, ''), agent, headers, connections: 0, seen: new WeakSet() };
  return target;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6; // ms, sub-µs resolution

export interface Call {
  status: number;
  startedAt: number;
  /** Time the response head arrived. */
  headAt: number;
  endedAt: number;
  lines: number;
  bytes: number;
}

interface CallOptions {
  method: string;
  path: string;
  body?: string | Buffer;
  /** For a large upload: the body as a repeated chunk, written with backpressure. */
  repeatedBody?: { chunk: Buffer; last: Buffer; times: number };
  headers?: Record<string, string>;
  onLines?: (total: number) => void;
}

export function call(t: Target, o: CallOptions): Promise<Call> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...t.headers, ...o.headers };
    if (o.body !== undefined) headers['content-length'] = Buffer.byteLength(o.body);
    if (o.repeatedBody) headers['content-length'] = o.repeatedBody.chunk.length * (o.repeatedBody.times - 1) + o.repeatedBody.last.length;
    const startedAt = now();
    let headAt = 0;
    const req = http.request(
      { agent: t.agent, host: t.url.hostname, port: t.url.port, method: o.method, path: t.prefix + o.path, headers },
      (res) => {
        headAt = now();
        let lines = 0;
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          let i = chunk.indexOf(10);
          let n = 0;
          while (i !== -1) {
            n += 1;
            i = chunk.indexOf(10, i + 1);
          }
          if (n) {
            lines += n;
            o.onLines?.(lines);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, startedAt, headAt, endedAt: now(), lines, bytes }));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error(`${t.name} ${o.path}: response aborted`)));
      },
    );
    req.on('socket', (socket: Socket) => {
      if (t.seen.has(socket)) return;
      t.seen.add(socket);
      t.connections += 1;
      socket.setNoDelay(true);
    });
    req.on('error', (e) => reject(new Error(`${t.name} ${o.method} ${o.path}: ${e.message}`)));
    if (o.repeatedBody) {
      const { chunk, last, times } = o.repeatedBody;
      let sent = 0;
      const pump = (): void => {
        while (sent < times) {
          sent += 1;
          if (!req.write(sent === times ? last : chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    } else {
      req.end(o.body);
    }
  });
}

/** Lets the keep-alive agent take the socket back before the next request. */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

function expectStatus(t: Target, what: string, c: Call, status: number): void {
  if (c.status !== status) throw new Error(`${t.name}: ${what} answered HTTP ${c.status}, expected ${status}`);
}

// ---------------------------------------------------------------------------------------------

export interface TtfbResult {
  samples: number;
  p50: number;
  p95: number;
}

/** Time to first byte (response head) of GET /api/version, sequential samples, in ms. */
export async function ttfb(t: Target, samples: number): Promise<TtfbResult> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const c = await call(t, { method: 'GET', path: '/api/version' });
    expectStatus(t, 'GET /api/version', c, 200);
    times.push(c.headAt - c.startedAt);
    await settle();
  }
  return { samples, p50: quantile(times, 0.5), p95: quantile(times, 0.95) };
}

function generateBody(tokens: number): string {
  return JSON.stringify({ model: 'llama3.2', prompt: 'benchmark', stream: true, options: { num_predict: tokens } });
}

export interface StreamResult {
  lines: number;
  seconds: number;
  linesPerSecond: number;
}

/** One NDJSON stream of `tokens` token lines (+ the done line); lines/s over the whole request. */
export async function stream(t: Target, tokens: number): Promise<StreamResult> {
  const c = await call(t, {
    method: 'POST',
    path: '/api/generate',
    body: generateBody(tokens),
    headers: { 'content-type': 'application/json' },
  });
  expectStatus(t, 'POST /api/generate', c, 200);
  if (c.lines !== tokens + 1) throw new Error(`${t.name}: stream delivered ${c.lines} lines, expected ${tokens + 1}`);
  const seconds = (c.endedAt - c.startedAt) / 1000;
  await settle();
  return { lines: c.lines, seconds, linesPerSecond: c.lines / seconds };
}

export interface ConcurrentResult {
  streams: number;
  linesPerStream: number;
  seconds: number;
  /** All lines of all streams over the wall time from first request to last end. */
  linesPerSecond: number;
  /** Completion time of the fastest and slowest stream, seconds from the common start. */
  firstDone: number;
  lastDone: number;
  /** Share of its lines the slowest stream had when the fastest one finished (1 = perfectly fair). */
  slowestProgressAtFirstDone: number;
  /** Time between the first stream's first line and the last stream's first line, seconds. */
  startSpread: number;
}

/** `count` generate streams at once, `tokens` lines each. */
export async function concurrent(t: Target, count: number, tokens: number): Promise<ConcurrentResult> {
  const expected = tokens + 1;
  const progress = new Array<number>(count).fill(0);
  const firstLine = new Array<number>(count).fill(Number.NaN);
  let snapshot: number[] | undefined;
  const body = generateBody(tokens);
  const start = now();
  const calls = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      call(t, {
        method: 'POST',
        path: '/api/generate',
        body,
        headers: { 'content-type': 'application/json' },
        onLines: (n) => {
          if (progress[i] === 0) firstLine[i] = now();
          progress[i] = n;
          if (n === expected && snapshot === undefined) snapshot = [...progress];
        },
      }),
    ),
  );
  for (const c of calls) {
    expectStatus(t, 'POST /api/generate', c, 200);
    if (c.lines !== expected) throw new Error(`${t.name}: a concurrent stream delivered ${c.lines} lines, expected ${expected}`);
  }
  const ends = calls.map((c) => c.endedAt - start);
  const seconds = Math.max(...ends) / 1000;
  await settle();
  return {
    streams: count,
    linesPerStream: expected,
    seconds,
    linesPerSecond: (expected * count) / seconds,
    firstDone: Math.min(...ends) / 1000,
    lastDone: seconds,
    slowestProgressAtFirstDone: Math.min(...(snapshot ?? progress)) / expected,
    startSpread: (Math.max(...firstLine) - Math.min(...firstLine)) / 1000,
  };
}

/** Opens `count` keep-alive connections at once (cheap requests), so a concurrent run starts warm. */
export async function openConnections(t: Target, count: number): Promise<void> {
  await Promise.all(Array.from({ length: count }, () => call(t, { method: 'GET', path: '/api/version' })));
  await settle();
}

export interface Blob {
  /** The body is `chunk` repeated `times - 1` times, then `last`. */
  chunk: Buffer;
  last: Buffer;
  times: number;
  bytes: number;
  digest: string;
}

/**
 * Blobs of `mib` MiB. Ollama (and the emulator) answer 200 at once, without reading the body,
 * for a blob they already have, so every upload needs a body of its own: all share one random
 * prefix (hashed once) and differ in their last MiB.
 */
export function blobFactory(mib: number): () => Blob {
  if (mib < 2) throw new RangeError('blobFactory: at least 2 MiB');
  const chunk = randomBytes(1 << 20);
  const prefix = createHash('sha256');
  for (let i = 0; i < mib - 1; i++) prefix.update(chunk);
  return () => {
    const last = randomBytes(1 << 20);
    const digest = prefix.copy().update(last).digest('hex');
    return { chunk, last, times: mib, bytes: chunk.length * mib, digest };
  };
}

export interface UploadResult {
  bytes: number;
  seconds: number;
  mibPerSecond: number;
}

/** POST /api/blobs/sha256:<digest> with the whole body; the emulator hashes it and answers 201. */
export async function upload(t: Target, blob: Blob): Promise<UploadResult> {
  const c = await call(t, {
    method: 'POST',
    path: `/api/blobs/sha256:${blob.digest}`,
    repeatedBody: { chunk: blob.chunk, last: blob.last, times: blob.times },
    headers: { 'content-type': 'application/octet-stream' },
  });
  expectStatus(t, 'POST /api/blobs', c, 201);
  const seconds = (c.endedAt - c.startedAt) / 1000;
  await settle();
  return { bytes: blob.bytes, seconds, mibPerSecond: blob.bytes / (1 << 20) / seconds };
}

export interface PacedResult {
  streams: number;
  tokens: number;
  /** Gaps between consecutive token lines of one stream, pooled over all streams, in ms. */
  gapP50: number;
  gapP99: number;
  /** The largest gap of the run, in ms. */
  gapMax: number;
}

/**
 * `count` generate streams at once while the emulator paces its tokens (tokenIntervalMs set by
 * the caller): an Ollama box under load, where throughput is the model's and what a relay adds
 * shows up as a later line. Each token line's arrival is timed (lines that arrive in one chunk
 * share its time); the gaps between a stream's consecutive token lines are pooled.
 */
export async function paced(t: Target, count: number, tokens: number): Promise<PacedResult> {
  const arrivals = Array.from({ length: count }, () => new Float64Array(tokens + 1));
  const body = generateBody(tokens);
  const calls = await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const times = arrivals[i] as Float64Array;
      let seen = 0;
      return call(t, {
        method: 'POST',
        path: '/api/generate',
        body,
        headers: { 'content-type': 'application/json' },
        onLines: (n) => {
          const at = now();
          for (; seen < n && seen <= tokens; seen++) times[seen] = at;
        },
      });
    }),
  );
  for (const c of calls) {
    expectStatus(t, 'POST /api/generate', c, 200);
    if (c.lines !== tokens + 1) throw new Error(`${t.name}: a paced stream delivered ${c.lines} lines, expected ${tokens + 1}`);
  }
  // Token lines only: the done line follows the last token at once.
  const gaps: number[] = [];
  for (const times of arrivals) for (let k = 1; k < tokens; k++) gaps.push((times[k] as number) - (times[k - 1] as number));
  await settle();
  return { streams: count, tokens, gapP50: quantile(gaps, 0.5), gapP99: quantile(gaps, 0.99), gapMax: Math.max(...gaps) };
}
