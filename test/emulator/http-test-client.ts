// A small node:http client for the emulator's tests (and anyone testing against the emulator):
// exact control of Host and Origin, one fresh connection per request, and arrival times of each
// streamed line so pacing and "no buffering" can be checked.

import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';

export interface RawRequest {
  method?: string;
  path: string;
  /** Sent as given; a "host" entry replaces the one Node would add. */
  headers?: OutgoingHttpHeaders;
  /** A plain object is sent as JSON. */
  body?: string | Buffer | Readable | object;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json(): any;
}

const hasHeader = (headers: OutgoingHttpHeaders, name: string): boolean => Object.keys(headers).some((h) => h.toLowerCase() === name);

function encodeBody(body: RawRequest['body'], headers: OutgoingHttpHeaders): string | Buffer | Readable | undefined {
  if (body === undefined || body instanceof Readable) return body;
  let bytes: string | Buffer;
  if (typeof body === 'string' || Buffer.isBuffer(body)) bytes = body;
  else {
    if (!hasHeader(headers, 'content-type')) headers['content-type'] = 'application/json';
    bytes = JSON.stringify(body);
  }
  // Node sends no body on DELETE (or GET) unless the length is declared.
  if (!hasHeader(headers, 'content-length') && !hasHeader(headers, 'transfer-encoding')) headers['content-length'] = Buffer.byteLength(bytes);
  return bytes;
}

/** Sends the request; `response` resolves when the response headers arrive. `req` lets a test hang up at any time. */
export function start(baseUrl: string, r: RawRequest): { req: ClientRequest; response: Promise<IncomingMessage> } {
  const headers: OutgoingHttpHeaders = { ...(r.headers ?? {}) };
  const body = encodeBody(r.body, headers);
  const url = new URL(r.path, baseUrl);
  let req: ClientRequest | undefined;
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req = httpRequest(url, { method: r.method ?? (body === undefined ? 'GET' : 'POST'), headers, agent: false }, resolve);
    req.on('error', reject);
    if (body instanceof Readable) body.pipe(req);
    else req.end(body);
  });
  if (!req) throw new Error('unreachable: the request is created synchronously');
  return { req, response };
}

/** Sends the request and resolves when the response headers arrive (the body is left to the caller). */
export async function open(baseUrl: string, r: RawRequest): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  const { req, response } = start(baseUrl, r);
  return { req, res: await response };
}

export async function send(baseUrl: string, r: RawRequest): Promise<RawResponse> {
  const { res } = await open(baseUrl, r);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const text = body.toString('utf8');
  return { status: res.statusCode ?? 0, headers: res.headers, body, text, json: () => JSON.parse(text) };
}

export interface TimedPiece {
  text: string;
  /** ms since the request was sent. */
  at: number;
}

/**
 * Splits a streamed body on `separator` ("\n" for NDJSON, "\n\n" for SSE) and timestamps each
 * piece on arrival.
 */
export async function sendTimed(baseUrl: string, r: RawRequest, separator = '\n'): Promise<{ status: number; headers: IncomingHttpHeaders; headersAt: number; pieces: TimedPiece[] }> {
  const started = performance.now();
  const { res } = await open(baseUrl, r);
  const headersAt = performance.now() - started;
  const pieces: TimedPiece[] = [];
  let pending = '';
  res.setEncoding('utf8');
  for await (const chunk of res) {
    pending += chunk as string;
    for (let at = pending.indexOf(separator); at >= 0; at = pending.indexOf(separator)) {
      pieces.push({ text: pending.slice(0, at), at: performance.now() - started });
      pending = pending.slice(at + separator.length);
    }
  }
  if (pending !== '') pieces.push({ text: pending, at: performance.now() - started });
  return { status: res.statusCode ?? 0, headers: res.headers, headersAt, pieces };
}

/** Reads `count` newline-separated lines, then pauses the response, leaving the rest unread. */
export function readLines(res: IncomingMessage, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let pending = '';
    const finish = (error?: Error): void => {
      res.off('data', onData);
      res.off('end', onEnd);
      res.off('error', finish);
      res.pause();
      if (error) reject(error);
      else resolve(lines);
    };
    const onData = (chunk: string): void => {
      pending += chunk;
      for (let at = pending.indexOf('\n'); at >= 0 && lines.length < count; at = pending.indexOf('\n')) {
        lines.push(pending.slice(0, at));
        pending = pending.slice(at + 1);
      }
      if (lines.length >= count) finish();
    };
    const onEnd = (): void => finish(new Error(`response ended after ${lines.length} of ${count} lines`));
    res.setEncoding('utf8');
    res.on('data', onData);
    res.on('end', onEnd);
    res.on('error', finish);
  });
}
