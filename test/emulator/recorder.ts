// What the emulator saw: one record per request, updated as the exchange progresses, so tests can
// assert on what a relay actually delivered (body size and digest, tokens sent, aborts) and wait
// for a state instead of sleeping.

import type { IncomingMessage } from 'node:http';

export interface RecordedRequest {
  id: number;
  method: string;
  /** Path including the query string, as received. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Request body bytes received so far. */
  bodyBytes: number;
  /** Hex sha256 of the whole body, set once it has been fully received (hashed as it streams). */
  bodySha256?: string;
  /** Status sent, set when the response headers go out. */
  status?: number;
  startedAt: number;
  /** Set when the response has been fully ended. */
  finishedAt?: number;
  /** True if the caller went away before the response ended. */
  aborted: boolean;
  /** When the caller went away (addition to the brief's shape). */
  abortedAt?: number;
  /** Tokens generated so far: lines/chunks written when streaming, generated internally otherwise. */
  tokensSent: number;
}

interface Waiter {
  predicate: (r: RecordedRequest) => boolean;
  resolve: (r: RecordedRequest) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function describe(r: RecordedRequest): string {
  const state = r.aborted ? 'aborted' : r.finishedAt !== undefined ? 'finished' : 'open';
  return `#${r.id} ${r.method} ${r.path} status=${r.status ?? '-'} tokens=${r.tokensSent} body=${r.bodyBytes}B ${state}`;
}

export class RequestLog {
  readonly all: RecordedRequest[] = [];
  private readonly waiters = new Set<Waiter>();
  private nextId = 1;

  open(req: IncomingMessage): RecordedRequest {
    const record: RecordedRequest = {
      id: this.nextId++,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: { ...req.headers },
      bodyBytes: 0,
      startedAt: Date.now(),
      aborted: false,
      tokensSent: 0,
    };
    this.all.push(record);
    return record;
  }

  /** Call after every change to a record: pending waitFor predicates are re-checked against it. */
  changed(record: RecordedRequest): void {
    for (const w of this.waiters) this.check(w, record);
  }

  waitFor(predicate: (r: RecordedRequest) => boolean, timeoutMs: number): Promise<RecordedRequest> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          const seen = this.all.length ? this.all.map(describe).join('\n  ') : '(none)';
          reject(new Error(`OllamaEmulator.waitFor: no request matched within ${timeoutMs} ms; requests seen:\n  ${seen}`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
      for (const r of this.all) if (this.check(waiter, r)) return;
    });
  }

  /** Fails every pending waitFor, so a test does not sit out its timeout after close(). */
  rejectAll(reason: string): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`OllamaEmulator.waitFor: ${reason}`));
    }
    this.waiters.clear();
  }

  private check(w: Waiter, record: RecordedRequest): boolean {
    if (!this.waiters.has(w)) return false;
    let matched: boolean;
    try {
      matched = w.predicate(record);
    } catch (error) {
      matched = false;
      this.waiters.delete(w);
      clearTimeout(w.timer);
      w.reject(error instanceof Error ? error : new Error(String(error)));
      return true;
    }
    if (!matched) return false;
    this.waiters.delete(w);
    clearTimeout(w.timer);
    w.resolve(record);
    return true;
  }
}
