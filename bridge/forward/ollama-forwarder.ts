/**
 * Serves one relayed request: checks it against the policy, then streams it to the local Ollama
 * and streams the answer back on the same HTTP/2 stream. Bodies are piped both ways, never held.
 */
import http from 'node:http';
import https from 'node:https';
import type { IncomingHttpHeaders as H2Headers, ServerHttp2Stream } from 'node:http2';
import { copyWithBackpressure } from '../connection/backpressure.js';
import { relayableRequestHeaders, relayableResponseHeaders } from '../connection/headers.js';
import { REFUSAL_HEADER } from '../connection/protocol.js';
import { decide, type CloudPolicy } from '../ingress/policy.js';
import { describeConnectError, UNREACHABLE_CODES } from './ollama-probe.js';
import type { OllamaTarget } from './ollama-target.js';
import { abort, endBody, guard, isOpen, respond, writeBody } from './respond.js';

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

/** Ollama's own error shape, so every client library shows the message to its user. */
function respondError(stream: ServerHttp2Stream, method: string | undefined, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: message });
  respond(stream, {
    method,
    status,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      [REFUSAL_HEADER]: code,
      ...extra,
    },
    body,
    stopUpload: true,
  });
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
    guard(stream);
    const method = headers[':method'];
    const decision = decide(
      this.options.policy(),
      { method, path: headers[':path'], authority: headers[':authority'], scheme: headers[':scheme'] },
      target.host,
    );
    const routeName = decision.route?.name ?? 'unknown';
    events.requestStarted(routeName);
    if (!decision.allow) {
      respondError(stream, method, decision.status, decision.code, decision.message, decision.allowHeader ? { allow: decision.allowHeader } : {});
      // Whatever body the cloud still sends for a refused request is dropped unread.
      stream.resume();
      events.requestFinished(routeName, 'refused', decision.status);
      return;
    }

    const outHeaders = relayableRequestHeaders(headers as http.IncomingHttpHeaders);
    // Ollama checks Host against its own name (a foreign Host gets 403): send the target's.
    outHeaders['host'] = target.host;
    // HEADERS with END_STREAM: no body. Otherwise one follows, whatever the method: Node frames a
    // GET, HEAD or DELETE body only when told to (it would send the bytes unframed).
    const hasBody = !stream.endAfterHeaders;
    if (hasBody && outHeaders['content-length'] === undefined) outHeaders['transfer-encoding'] = 'chunked';
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
    stream.on('data', (chunk: Buffer) => events.bytes('in', chunk.length));
    if (hasBody) stream.pipe(request);
    else request.end();

    request.on('error', (err: NodeJS.ErrnoException) => {
      if (finished) return;
      if (!stream.headersSent) {
        const problem = describeConnectError(err, target.url.origin);
        if (err.code && UNREACHABLE_CODES.has(err.code)) events.ollamaReachable(false, problem);
        respondError(stream, method, 502, 'ollama-unreachable', problem);
        finish('failed', 502);
      } else {
        // Mid-body failure: reset the stream so the cloud client sees a broken response, not a
        // clean end that looks complete.
        abort(stream);
        finish('failed');
      }
    });

    request.on('response', (response) => {
      events.ollamaReachable(true, `Ollama at ${target.url.origin} answered`);
      if (!isOpen(stream)) {
        response.destroy();
        return;
      }
      const status = response.statusCode ?? 0;
      if (status < 200 || status > 599) {
        // HTTP/2 cannot carry it, and no Ollama client would understand it.
        response.destroy();
        respondError(stream, method, 502, 'ollama-bad-status', `Ollama at ${target.url.origin} answered with an invalid HTTP status (${status})`);
        finish('failed', 502);
        return;
      }
      const responded = respond(stream, { method, status, headers: relayableResponseHeaders(response.headers) });
      if (responded !== 'body') {
        // A head-only answer (HEAD, 204, 304) is complete with its head.
        response.resume();
        finish(responded === 'complete' ? 'ok' : 'failed', status);
        return;
      }
      copyWithBackpressure(response, stream, {
        onChunk: (chunk) => events.bytes('out', chunk.length),
        write: (chunk) => writeBody(stream, chunk),
        gone: () => !isOpen(stream) || stream.writableEnded,
      });
      response.on('end', () => {
        if (response.complete) {
          endBody(stream);
          finish('ok', status);
        }
      });
      const broken = (): void => {
        if (finished) return;
        abort(stream);
        finish('failed', status);
      };
      response.on('aborted', broken);
      response.on('error', broken);
      response.on('close', () => {
        if (!response.complete) broken();
      });
    });
  }
}
