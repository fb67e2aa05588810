/**
 * Serves one relayed request: checks it against the policy, then streams it to the local Ollama
 * and streams the answer back on the same HTTP/2 stream. Bodies are piped both ways, never held.
 */
import http from 'node:http';
import https from 'node:https';
import http2, { type IncomingHttpHeaders as H2Headers, type ServerHttp2Stream } from 'node:http2';
import { relayableRequestHeaders, relayableResponseHeaders } from '../connection/headers.js';
import { COMPLETE_TRAILER, REFUSAL_HEADER } from '../connection/protocol.js';
import { decide, type CloudPolicy } from '../ingress/policy.js';
import type { OllamaTarget } from './ollama-target.js';

const { NGHTTP2_INTERNAL_ERROR } = http2.constants;

export interface ForwardEvents {
  requestStarted(route: string): void;
  requestFinished(route: string, outcome: 'ok' | 'refused' | 'aborted' | 'failed', status: number | undefined): void;
  bytes(direction: 'in' | 'out', count: number): void;
  ollamaReachable(reachable: boolean, detail: string): void;
}

export interface ForwarderOptions {
  target: OllamaTarget;
  policy: () => CloudPolicy;
  events: ForwardEvents;
}

/** Marks the response complete once its last byte is out (see COMPLETE_TRAILER). */
function sendCompleteTrailer(stream: ServerHttp2Stream, stopUpload = false): void {
  stream.once('wantTrailers', () => {
    stream.sendTrailers({ [COMPLETE_TRAILER]: '1' });
    // A refused request's body is not wanted: RST_STREAM(NO_ERROR) after a complete response
    // tells the proxy to stop sending it (RFC 9113 §8.1), so a refused 1 GB upload costs nothing.
    if (stopUpload && !stream.readableEnded) setImmediate(() => stream.close(http2.constants.NGHTTP2_NO_ERROR));
  });
}

/** Ollama's own error shape, so every client library shows the message to its user. */
function respondError(stream: ServerHttp2Stream, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(NGHTTP2_INTERNAL_ERROR);
    return;
  }
  const body = JSON.stringify({ error: message });
  sendCompleteTrailer(stream, true);
  stream.respond(
    {
      ':status': status,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      [REFUSAL_HEADER]: code,
      ...extra,
    },
    { waitForTrailers: true },
  );
  stream.end(body);
}

function describeConnectError(err: NodeJS.ErrnoException, target: OllamaTarget): string {
  const where = `Ollama at ${target.url.origin}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `${where} refused the connection: is Ollama running on your computer?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${where} cannot be found (${err.code}): check the Ollama URL in CloudToLocalLLM's settings`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} cannot be reached (${err.code})`;
    default:
      return `${where} cannot be reached: ${err.code ?? err.message}`;
  }
}

export class OllamaForwarder {
  // Keep-alive to Ollama saves a TCP handshake per token stream; no socket timeout, since a
  // model load can take minutes before the first byte.
  private readonly agent: http.Agent;

  constructor(private readonly options: ForwarderOptions) {
    const AgentClass = options.target.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new AgentClass({ keepAlive: true, maxSockets: Infinity, scheduling: 'lifo' });
  }

  close(): void {
    this.agent.destroy();
  }

  handle(stream: ServerHttp2Stream, headers: H2Headers): void {
    const { target, events } = this.options;
    const method = headers[':method'];
    const decision = decide(
      this.options.policy(),
      { method, path: headers[':path'], authority: headers[':authority'], scheme: headers[':scheme'] },
      target.host,
    );
    const routeName = decision.route?.name ?? 'unknown';
    events.requestStarted(routeName);
    if (!decision.allow) {
      respondError(stream, decision.status, decision.code, decision.message, decision.allowHeader ? { allow: decision.allowHeader } : {});
      // Whatever body the cloud still sends for a refused request is dropped unread.
      stream.resume();
      events.requestFinished(routeName, 'refused', decision.status);
      return;
    }

    const outHeaders = relayableRequestHeaders(headers as http.IncomingHttpHeaders);
    // Ollama checks Host against its own name (a foreign Host gets 403): send the target's.
    outHeaders['host'] = target.host;
    const request = (target.protocol === 'https:' ? https : http).request({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method,
      path: decision.path + decision.query,
      headers: outHeaders,
      agent: this.agent,
    });

    let finished = false;
    const finish = (outcome: 'ok' | 'aborted' | 'failed', status?: number): void => {
      if (finished) return;
      finished = true;
      events.requestFinished(routeName, outcome, status);
    };

    // The cloud caller went away (RST_STREAM) or the tunnel died: abort the request to Ollama,
    // so the GPU stops generating for nobody.
    stream.on('close', () => {
      if (!finished) {
        request.destroy();
        finish('aborted');
      }
    });
    stream.on('error', () => {
      /* reported through 'close' */
    });

    stream.on('data', (chunk: Buffer) => events.bytes('in', chunk.length));
    stream.pipe(request);

    request.on('error', (err: NodeJS.ErrnoException) => {
      if (finished) return;
      if (!stream.headersSent) {
        const reachable = !(err.code && ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'].includes(err.code));
        if (!reachable) events.ollamaReachable(false, describeConnectError(err, target));
        respondError(stream, 502, 'ollama-unreachable', describeConnectError(err, target));
        finish('failed', 502);
      } else {
        // Mid-body failure: reset the stream so the cloud client sees a broken response, not a
        // clean end that looks complete.
        stream.close(NGHTTP2_INTERNAL_ERROR);
        finish('failed');
      }
    });

    request.on('response', (response) => {
      events.ollamaReachable(true, `Ollama at ${target.url.origin} answered`);
      if (stream.destroyed || stream.closed) {
        response.destroy();
        return;
      }
      const status = response.statusCode ?? 502;
      sendCompleteTrailer(stream);
      stream.respond({ ':status': status, ...relayableResponseHeaders(response.headers) }, { waitForTrailers: true });
      response.on('data', (chunk: Buffer) => {
        events.bytes('out', chunk.length);
        if (!stream.write(chunk)) {
          response.pause();
          stream.once('drain', () => response.resume());
        }
      });
      response.on('end', () => {
        if (response.complete) {
          stream.end();
          finish('ok', status);
        }
      });
      response.on('aborted', () => {
        stream.close(NGHTTP2_INTERNAL_ERROR);
        finish('failed', status);
      });
      response.on('error', () => {
        stream.close(NGHTTP2_INTERNAL_ERROR);
        finish('failed', status);
      });
      response.on('close', () => {
        if (!response.complete && !finished) {
          stream.close(NGHTTP2_INTERNAL_ERROR);
          finish('failed', status);
        }
      });
    });
  }
}
