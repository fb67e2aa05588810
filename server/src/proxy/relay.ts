/**
 * Relays one Ollama API request through the tunnel and streams the answer back, chunk by chunk
 * as the bridge sends it: no buffering, no compression, no timeout of its own.
 *
 * Failure rules (OLLAMA-API.md): no bridge → 503 at once; bridge lost or Ollama failing before
 * the answer began → 502; after it began → the client sees a broken response (an error line
 * for NDJSON/SSE, then the connection cut without the chunked terminator), never a clean end.
 */
import http2, { type ClientHttp2Stream } from 'node:http2';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { relayableRequestHeaders } from '@cloudtolocalllm/bridge/connection/headers';
import { COMPLETE_TRAILER } from '@cloudtolocalllm/bridge/connection/protocol';
import type { TokenTally } from '@cloudtolocalllm/bridge/connection/token-tally';
import type { BridgeLink } from './bridge-link.js';
import { sendOllamaError } from './ollama-errors.js';
import type { ProxyMetrics } from './proxy-metrics.js';
import { copyAnswer, type PendingHead } from '../relayed-head.js';
import { isRelayableStatus, relayedResponseHeaders } from './response-head.js';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/**
 * How long a request may wait for its answer's head: twice Ollama's own model-load timeout
 * (OLLAMA_LOAD_TIMEOUT, 5 minutes by default), so the slowest load Ollama itself allows, plus
 * the evaluation of a long prompt, still passes; a bridge that never answers (or advertises
 * MAX_CONCURRENT_STREAMS=0 and so never opens the stream) no longer holds the request for ever.
 */
export const DEFAULT_RESPONSE_HEAD_TIMEOUT_MS = 600_000;

/**
 * Does an HTTP/1.1 request carry a body (RFC 9112 §6.3)? Only then is a DATA frame sent: Node
 * ends a GET, HEAD or DELETE stream with its HEADERS unless told otherwise, which dropped
 * DELETE /api/delete's JSON body (issue 13, finding 4).
 */
export function hasBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

export const NO_BRIDGE_MESSAGE =
  'your computer is not connected: the CloudToLocalLLM bridge on your computer is not running or cannot reach the cloud. ' +
  'Start CloudToLocalLLM on your computer and sign in, then try again.';

function isLineStream(contentType: string | undefined): 'ndjson' | 'sse' | undefined {
  if (!contentType) return undefined;
  if (contentType.includes('ndjson')) return 'ndjson';
  if (contentType.includes('text/event-stream')) return 'sse';
  return undefined;
}

/** What a caller learns of a relayed request: the answer's status once its head came. */
export interface RelayHooks {
  onHead?(status: number): void;
  /** The bridge's trailers of a complete answer (a keyed answer's token counts). */
  onTrailers?(trailers: http2.IncomingHttpHeaders): void;
  /** Fed every chunk relayed to the client: what a cut answer used (onCut). */
  tally?: TokenTally;
  /** A started answer ended without its completion: the computer left, Ollama failed or the client went away midway. */
  onCut?(): void;
}

export class Relay {
  active = 0;

  constructor(
    private readonly metrics: ProxyMetrics,
    private readonly responseHeadTimeoutMs = DEFAULT_RESPONSE_HEAD_TIMEOUT_MS,
  ) {}

  /**
   * Relays the request over `link` (undefined: no computer connected, 503). `own`: headers this
   * proxy adds for its bridge (a client key's id), after the client's are filtered. `body`: the
   * request body when the proxy read it already (to route by its model), else it is streamed.
   */
  handle(req: IncomingMessage, res: ServerResponse, link: BridgeLink | undefined, own: Record<string, string> = {}, body?: Buffer, hooks: RelayHooks = {}): void {
    const withBody = body !== undefined ? body.length > 0 : hasBody(req.headers);
    const stream = link?.request(
      {
        ':method': req.method ?? 'GET',
        ':path': req.url ?? '/',
        ...relayableRequestHeaders(req.headers),
        ...own,
      },
      { endStream: !withBody },
    );
    if (!link || !stream) {
      this.metrics.requests.inc({ outcome: 'no-bridge' });
      sendOllamaError(res, 'no-bridge', NO_BRIDGE_MESSAGE, { 'retry-after': '5' });
      req.resume();
      return;
    }
    this.track(req, res, link, stream, withBody, body, hooks);
  }

  private track(req: IncomingMessage, res: ServerResponse, link: BridgeLink, stream: ClientHttp2Stream, withBody: boolean, body: Buffer | undefined, hooks: RelayHooks): void {
    this.active += 1;
    link.inFlight += 1;
    this.metrics.activeStreams.inc();
    let complete = false;
    let done = false;
    /** The answer's head went to the client: from then on, an end without completion is a cut. */
    let started = false;
    let lineKind: 'ndjson' | 'sse' | undefined;
    let lastByte = 0x0a;
    let head: PendingHead | undefined;
    const finish = (outcome: string): void => {
      if (done) return;
      done = true;
      clearTimeout(headDeadline);
      this.active -= 1;
      link.inFlight -= 1;
      this.metrics.activeStreams.dec();
      this.metrics.requests.inc({ outcome });
      if (started && !complete && outcome !== 'ok') hooks.onCut?.();
    };

    const headDeadline = setTimeout(() => {
      const seconds = Math.round(this.responseHeadTimeoutMs / 1000);
      sendOllamaError(res, 'no-answer', `your computer did not begin to answer within ${seconds} s; try again (a model that takes longer to load can be loaded beforehand)`);
      finish('no-answer');
      if (!stream.closed && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
    }, this.responseHeadTimeoutMs);
    headDeadline.unref();

    // Request body: streamed up with backpressure from HTTP/2 flow control.
    if (body !== undefined) {
      this.metrics.bytes.inc({ direction: 'up' }, body.length);
      if (withBody) stream.end(body);
    } else if (withBody) {
      req.on('data', (chunk: Buffer) => this.metrics.bytes.inc({ direction: 'up' }, chunk.length));
      req.pipe(stream);
    } else {
      req.resume();
    }
    stream.on('error', () => {
      /* handled on 'close' with the stream's state */
    });

    // Body listeners are attached only once the response head is handled: Node emits
    // 'response' on the next tick, and DATA that came in the same read would otherwise
    // be written before the head.
    stream.on('response', (headers, flags) => {
      if (done) return;
      clearTimeout(headDeadline);
      const status = Number(headers[':status']);
      if (!isRelayableStatus(status)) {
        sendOllamaError(res, 'bad-answer', `your computer's bridge answered with an invalid HTTP status (${String(headers[':status']).slice(0, 10)}); check that CloudToLocalLLM is up to date`);
        finish('bad-answer');
        stream.close(NGHTTP2_CANCEL);
        return;
      }
      // A head that ends the stream (HEAD, 204, 304) is the whole answer: no torn-down tunnel makes one.
      if (flags & NGHTTP2_FLAG_END_STREAM) complete = true;
      lineKind = isLineStream(typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined);
      hooks.onHead?.(status);
      res.writeHead(status, relayedResponseHeaders(headers as IncomingHttpHeaders));
      started = true;
      head = copyAnswer(stream, res, {
        onChunk: (chunk) => {
          this.metrics.bytes.inc({ direction: 'down' }, chunk.length);
          lastByte = chunk[chunk.length - 1] ?? lastByte;
          hooks.tally?.feed(chunk);
        },
      });
    });
    stream.on('trailers', (trailers) => {
      if (trailers[COMPLETE_TRAILER] !== '1') return;
      complete = true;
      hooks.onTrailers?.(trailers);
    });

    // Decided on 'close', the last event, once both 'end' and the trailer have been seen.
    stream.on('close', () => {
      if (done) return;
      if (complete && stream.readableEnded) {
        res.end();
        finish('ok');
        return;
      }
      // The stream ended without its END_STREAM: the bridge reset it, or the tunnel died.
      // A computer that left (or was replaced under its name) ends this link's streams.
      const lost = !link.connected;
      const what = lost
        ? 'the connection to your computer was lost'
        : 'Ollama on your computer stopped answering';
      if (!res.headersSent) {
        sendOllamaError(res, lost ? 'bridge-lost' : 'upstream-reset', `${what} before the answer began; try again`);
        finish(lost ? 'bridge-lost' : 'upstream-reset');
        return;
      }
      head?.send();
      this.breakResponse(res, lineKind, lastByte, `${what} mid-stream: this answer is incomplete`);
      finish(lost ? 'bridge-lost' : 'upstream-reset');
    });

    // The client went away: reset the stream so the bridge aborts the request to Ollama.
    res.on('close', () => {
      if (res.writableFinished) return;
      if (!stream.closed && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
      finish('client-aborted');
    });
  }

  /** Ends a started response so no client can take it for complete. */
  private breakResponse(res: ServerResponse, kind: 'ndjson' | 'sse' | undefined, lastByte: number, message: string): void {
    const cut = (): void => {
      // Node corks the socket for a response's writes until the next tick: what was relayed in
      // this one (the head with a first chunk) goes out before the cut, not lost with it.
      while (res.socket?.writableCorked) res.socket.uncork();
      res.destroy();
    };
    if (res.destroyed || res.writableEnded) return;
    const sep = lastByte === 0x0a ? '' : '\n';
    if (kind === 'ndjson') {
      res.write(`${sep}${JSON.stringify({ error: message })}\n`, cut);
    } else if (kind === 'sse') {
      res.write(`${sep}\ndata: ${JSON.stringify({ error: { message, type: 'api_error' } })}\n\n`, cut);
    } else {
      cut();
    }
  }
}
