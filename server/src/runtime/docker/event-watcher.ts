/**
 * A reconnecting subscription to the engine's event stream. The runtime needs to learn when a
 * proxy container dies on its own (crash, OOM kill, `docker kill`, `docker rm -f`), and the
 * engine only says so on /events. That stream is one long HTTP response: it ends when the
 * engine restarts or the socket hiccups, so this reconnects with backoff and asks for the
 * events it missed meanwhile (`since` the last one seen), dropping the few replayed twice.
 */
import { EventEmitter } from 'node:events';
import type Dockerode from 'dockerode';

/** The fields of an engine event the runtime uses (API 1.41 /events). */
export interface EngineEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  time: number;
  timeNano: number;
}

export interface EventWatcherEvents {
  event: [EngineEvent];
  /** Connected (again); `since` is the replay start in seconds, if any. */
  connected: [];
  /** The stream failed or ended; it will reconnect after `retryInMs` unless closed. */
  disconnected: [error: Error, retryInMs: number];
}

export interface EventWatcherOptions {
  filters: Record<string, string[]>;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

type Readable = NodeJS.ReadableStream & { destroy?: (error?: Error) => void };

export class EventWatcher extends EventEmitter<EventWatcherEvents> {
  private stream: Readable | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private backoffMs: number;
  private lastTimeNano = 0;
  /** Events seen in the last replay window, to drop duplicates after a reconnect. */
  private readonly seen = new Set<string>();
  private resolveReady!: () => void;
  /** Settles at the first connection attempt's outcome (connected or failed), never rejects. */
  readonly ready: Promise<void> = new Promise((resolve) => (this.resolveReady = resolve));

  constructor(
    private readonly docker: Pick<Dockerode, 'getEvents'>,
    private readonly options: EventWatcherOptions,
  ) {
    super();
    this.backoffMs = options.minBackoffMs ?? 200;
  }

  start(): void {
    if (this.closed || this.stream || this.timer) return;
    void this.connect();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.stream?.destroy?.();
    this.stream = undefined;
    this.resolveReady();
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    // Replay from the last event's second (the API's `since` has whole-second granularity in
    // practice); on the first connection, from now: older deaths are list()'s business.
    const since = this.lastTimeNano ? Math.floor(this.lastTimeNano / 1e9) : undefined;
    let stream: Readable;
    try {
      stream = (await this.docker.getEvents({ filters: this.options.filters, ...(since ? { since } : {}) })) as Readable;
    } catch (e) {
      this.retry(e as Error);
      return;
    }
    if (this.closed) {
      stream.destroy?.();
      return;
    }
    this.stream = stream;
    if (!this.lastTimeNano) this.lastTimeNano = Date.now() * 1e6;
    this.backoffMs = this.options.minBackoffMs ?? 200;
    this.resolveReady();
    this.emit('connected');
    let buffered = '';
    stream.on('data', (chunk: Buffer | string) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) this.onLine(line);
      }
    });
    let ended = false;
    const onEnd = (error?: Error): void => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.stream = undefined;
      this.retry(error ?? new Error('the engine closed the event stream'));
    };
    stream.on('error', (e: Error) => onEnd(e));
    stream.on('end', () => onEnd());
    stream.on('close', () => onEnd());
  }

  private retry(error: Error): void {
    this.resolveReady();
    if (this.closed) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 5000);
    this.emit('disconnected', error, wait);
    this.timer = setTimeout(() => void this.connect(), wait);
    // A dropped event stream must not keep the process alive on its own.
    this.timer.unref();
  }

  private onLine(line: string): void {
    let event: EngineEvent;
    try {
      event = JSON.parse(line) as EngineEvent;
    } catch {
      return;
    }
    // timeNano exceeds 2^53 and loses its last digits in a JS number; with the container id and
    // action in the key that is still unique (one container does not die twice in 256 ns).
    const key = `${event.Actor?.ID}:${event.Action}:${event.timeNano}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    // Only the replay window (about a second) can repeat; keep the set small.
    if (this.seen.size > 1000) {
      for (const old of this.seen) {
        this.seen.delete(old);
        if (this.seen.size <= 500) break;
      }
    }
    if (event.timeNano > this.lastTimeNano) this.lastTimeNano = event.timeNano;
    this.emit('event', event);
  }
}
