// One request/response pair as the handlers see it, plus the few response primitives they share.
// Every write goes through here so the record (status, tokens) stays true, and every wait can be
// cut short by the caller leaving (x.signal), which is how generation stops "at once".

import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { EmulatorBehaviour } from './behaviour.js';
import type { ModelRegistry } from './models.js';
import type { RecordedRequest } from './recorder.js';

export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly record: RecordedRequest;
  /** Route parameters such as :digest or :model, URL-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The behaviour in force when the request arrived: set() during a response does not change it. */
  readonly behaviour: Readonly<EmulatorBehaviour>;
  readonly models: ModelRegistry;
  readonly version: string;
  /** Aborted when the caller goes away or the emulator closes. */
  readonly signal: AbortSignal;
  /** The whole request body; only JSON routes collect it (blob uploads are hashed, never held). */
  body(): Promise<Buffer>;
  /** "sha256:<hex>" of the request body, once fully received. */
  bodyDigest(): Promise<string>;
  noteStatus(status: number): void;
  noteToken(): void;
  /** Counts an in-progress generation for activeGenerations(); call the returned function when it ends. */
  beginGeneration(): () => void;
}

/** Thrown by handlers for a client mistake; answered 400 in the route's error style. */
export class BadRequest extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
    this.name = 'BadRequest';
  }
}

export function writeHead(x: Exchange, status: number, headers: OutgoingHttpHeaders): void {
  x.res.writeHead(status, headers);
  x.noteStatus(status);
}

/** gin's c.JSON: compact JSON, "application/json; charset=utf-8", a Content-Length. */
export function sendJson(x: Exchange, status: number, value: unknown, contentType = 'application/json; charset=utf-8', newline = false): void {
  const body = JSON.stringify(value) + (newline ? '\n' : '');
  writeHead(x, status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  x.res.end(body);
}

export function sendText(x: Exchange, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  writeHead(x, status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  x.res.end(text);
}

/** gin's c.Status / AbortWithStatus: no body at all. */
export function sendEmpty(x: Exchange, status: number): void {
  writeHead(x, status, { 'Content-Length': 0 });
  x.res.end();
}

/** Headers of a streamed answer: no Content-Length, so Node uses chunked encoding. */
export function startStream(x: Exchange, contentType: string): void {
  writeHead(x, 200, { 'Content-Type': contentType });
}

/**
 * Writes one line or event with its own write(), so it leaves at once (the server has Nagle off).
 * Like Go's blocking Write, waits for 'drain' when the caller reads slowly. False if the caller left.
 */
export function writeChunk(x: Exchange, text: string): Promise<boolean> {
  if (x.signal.aborted || x.res.destroyed) return Promise.resolve(false);
  if (x.res.write(text)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const finish = (value: boolean): void => {
      x.res.off('drain', onDrain);
      x.signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onDrain = (): void => finish(true);
    const onAbort = (): void => finish(false);
    x.res.once('drain', onDrain);
    x.signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Waits ms (0 still yields to the event loop); false, early, if the signal aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    let cancel = (): void => undefined;
    const onAbort = (): void => {
      cancel();
      resolve(false);
    };
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve(!signal.aborted);
    };
    if (ms > 0) {
      const timer = setTimeout(done, ms);
      cancel = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(done);
      cancel = () => clearImmediate(immediate);
    }
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
