/**
 * Waiting for a freshly started proxy to answer, and keeping what it printed meanwhile.
 *
 * The runtime promises that start() resolves only once GET /health answers 200, so it polls
 * the proxy directly over the bridge (the engine's own HEALTHCHECK runs every 30 s: far too
 * coarse for a start). If the proxy never answers, the person reading the error needs the
 * proxy's last words; containers are auto-removed on exit, taking their logs with them, so the
 * output is captured from an attach made before the container starts.
 */
import http from 'node:http';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/** A sink that keeps only the last `maxBytes` of what is written to it. */
export class OutputTail extends Writable {
  private text = '';
  private watches: Array<{ needle: string; resolve: () => void }> = [];

  constructor(private readonly maxBytes = 4096) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    const added = chunk.toString('utf8');
    const joined = this.text.slice(-256) + added;
    this.text = (this.text + added).slice(-this.maxBytes);
    this.watches = this.watches.filter((w) => (joined.includes(w.needle) ? (w.resolve(), false) : true));
    callback();
  }

  /** Resolves once the output contains `needle` (from now on; never rejects). */
  seen(needle: string): Promise<void> {
    return new Promise((resolve) => this.watches.push({ needle, resolve }));
  }

  /** The last `count` non-empty lines. */
  lines(count = 15): string[] {
    return this.text
      .split('\n')
      .map((l) => l.trimEnd())
      .filter(Boolean)
      .slice(-count);
  }
}

/** One GET, resolving with the status code (never rejects: errors become a message). */
function probe(url: string, timeoutMs: number): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ error: e.message }));
  });
}

export interface WaitForHealthOptions {
  timeoutMs: number;
  /** Settles when the container has exited: no point waiting any longer. */
  exited?: Promise<string>;
  /** Settles when the proxy says it is listening: probe at once instead of at the next poll. */
  ready?: Promise<void>;
  /** The longest pause between probes (default 100 ms); the first pause is a quarter of it. */
  pauseMs?: number;
}

/**
 * Polls `url` until it answers 200. Rejects with the last failure when `timeoutMs` passes, or
 * at once when `exited` settles (its value says how the container ended).
 */
export async function waitForHealth(url: string, options: WaitForHealthOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let exitReason: string | undefined;
  void options.exited?.then((reason) => (exitReason = reason));
  let last = 'no attempt yet';
  let ready = options.ready;
  // Starts fast (a proxy is usually up in well under a second) and backs off a little under
  // load; a refused connection costs next to nothing, and the proxy's own "listening" line
  // (when the caller watches its output) cuts the wait short.
  const maxPause = options.pauseMs ?? 100;
  for (let pause = maxPause / 4; ; pause = Math.min(pause * 2, maxPause)) {
    if (exitReason !== undefined) throw new Error(exitReason);
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new Error(`it did not answer GET /health with 200 within ${Math.round(options.timeoutMs / 1000)} s (last attempt: ${last})`);
    }
    const result = await probe(url, Math.min(2000, remaining));
    if (result.status === 200) return;
    last = result.error ?? `HTTP ${result.status}`;
    const wake = ready?.then(() => (ready = undefined));
    // The pause is cancelled when something else wakes the loop, so no timer outlives the wait.
    const paused = new AbortController();
    await Promise.race([sleep(pause, undefined, { signal: paused.signal }).catch(() => undefined), ...(options.exited ? [options.exited] : []), ...(wake ? [wake] : [])]);
    paused.abort();
  }
}
