/**
 * The one way the bridge answers a relayed request on its HTTP/2 stream, for refusals and for
 * Ollama's answers alike. Two facts make writing to a stream dangerous (issue 13, finding 1):
 *
 *  - Node ends a stream together with its head when the answer can have no body: a HEAD request,
 *    or a 204, 205 or 304 (RFC 9110 §6.4.1). Writing a body afterwards raises
 *    ERR_STREAM_WRITE_AFTER_END;
 *  - a stream the cloud reset, or one whose tunnel went away, takes nothing more.
 *
 * An 'error' event nobody listens to ends the bridge's process (the CLI, or Electron's main
 * process), so every stream gets a listener first, and nothing is written to an ended stream.
 */
import http2, { type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { COMPLETE_TRAILER } from '../connection/protocol.js';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;

/** True when the answer to `method` with `status` carries no body (RFC 9110 §9.3.2, §15.3.5, §15.3.6, §15.4.5). */
export function isBodiless(method: string | undefined, status: number): boolean {
  return method?.toUpperCase() === 'HEAD' || status === 204 || status === 205 || status === 304 || (status >= 100 && status < 200);
}

/** Is the stream still there? (Node ends a HEAD request's writable side before its head is sent.) */
export function isOpen(stream: ServerHttp2Stream): boolean {
  return !stream.destroyed && !stream.closed;
}

/** Can a body chunk still be written? */
function isWritable(stream: ServerHttp2Stream): boolean {
  return isOpen(stream) && stream.headersSent && !stream.writableEnded;
}

/** Errors on a relayed stream surface through 'close' and the caller's own state; never let them crash the bridge. */
export function guard(stream: ServerHttp2Stream): void {
  if (stream.listenerCount('error') === 0) stream.on('error', () => undefined);
}

export interface RespondOptions {
  /** The request's method: a HEAD answer gets its head only. */
  method: string | undefined;
  status: number;
  headers: OutgoingHttpHeaders;
  /** The whole body (refusals); without it the caller streams the body with writeBody/endBody. */
  body?: string | Buffer;
  /**
   * Stop the request's upload once the answer is out (RST_STREAM(NO_ERROR) after a complete
   * response, RFC 9113 §8.1): a refused 1 GB upload then costs nothing.
   */
  stopUpload?: boolean;
  /** More trailers beside COMPLETE_TRAILER, read when the body has ended (a keyed answer's token counts). */
  trailers?: () => OutgoingHttpHeaders;
}

/**
 * What became of an answer: `body` the caller streams the body now (writeBody, then endBody);
 * `complete` it is out whole (a given body, or a head-only answer); `broken` the stream was gone,
 * already answered, or HTTP/2 could not carry the head, and it has been reset.
 */
export type Responded = 'body' | 'complete' | 'broken';

/** Sends the answer's head, and with `body` the whole answer. A second answer cannot follow a first. */
export function respond(stream: ServerHttp2Stream, options: RespondOptions): Responded {
  guard(stream);
  if (!isOpen(stream) || stream.headersSent) {
    abort(stream);
    return 'broken';
  }
  const bodiless = isBodiless(options.method, options.status);
  const stopUpload = (): void => {
    if (options.stopUpload && !stream.readableEnded) setImmediate(() => stream.close(NGHTTP2_NO_ERROR));
  };
  try {
    if (bodiless) {
      // The head ends the stream (END_STREAM on HEADERS): the proxy takes that as complete, since
      // a torn-down tunnel never produces it.
      stream.respond({ ':status': options.status, ...options.headers }, { endStream: true });
      stopUpload();
      return 'complete';
    }
    // Marks the answer complete once its last byte is out (see COMPLETE_TRAILER).
    stream.once('wantTrailers', () => {
      if (stream.destroyed || stream.closed) return;
      stream.sendTrailers({ ...options.trailers?.(), [COMPLETE_TRAILER]: '1' });
      stopUpload();
    });
    stream.respond({ ':status': options.status, ...options.headers }, { waitForTrailers: true });
  } catch {
    // A status or header HTTP/2 cannot carry (Node validates them): the answer is broken, say so.
    abort(stream);
    return 'broken';
  }
  if (options.body === undefined) return 'body';
  stream.end(options.body);
  return 'complete';
}

/** Writes one chunk of a streamed body; false means "wait for 'drain'" or, when closed, "stop". */
export function writeBody(stream: ServerHttp2Stream, chunk: Buffer): boolean {
  if (!isWritable(stream)) return false;
  return stream.write(chunk);
}

/** Ends a streamed body (the trailer marking it complete follows). */
export function endBody(stream: ServerHttp2Stream): void {
  if (isWritable(stream)) stream.end();
}

/** Breaks the answer so the cloud client sees it incomplete, never a clean end. */
export function abort(stream: ServerHttp2Stream): void {
  if (!stream.destroyed && !stream.closed) stream.close(NGHTTP2_INTERNAL_ERROR);
}
