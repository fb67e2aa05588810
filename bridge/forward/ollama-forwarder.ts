/**
 * Serves one relayed request: checks it against the policy, then streams it to the local Ollama
 * and streams the answer back on the same HTTP/2 stream. Bodies are piped both ways, never held.
 */
import http from 'node:http';
import https from 'node:https';
import type { IncomingHttpHeaders as H2Headers, ServerHttp2Stream } from 'node:http2';
import { copyWithBackpressure } from '../connection/backpressure.js';
import { CONTROL_AUTHORITY, decodeKeyScope, KEY_ID_HEADER, KEY_SCOPE_HEADER, KEY_SET_PATH, KEY_TOKENS_TRAILER, KEY_USAGE_PATH } from '../connection/client-key.js';
import { relayableRequestHeaders, relayableResponseHeaders } from '../connection/headers.js';
import { errorBody } from '../connection/error-shape.js';
import { REFUSAL_HEADER } from '../connection/protocol.js';
import { decide, type CloudPolicy } from '../ingress/policy.js';
import { bodyRefusal, filterModelList, keyFromScope, keyRefusal, LIST_ROUTES, machineRefusal, needsModelCheck, type KeyRules } from '../keys/key-scope.js';
import type { KeyRing } from '../keys/key-ring.js';
import { serveKeySet } from '../keys/key-set-stream.js';
import { serveUsageReport } from '../keys/usage-report.js';
import { TokenTally } from '../connection/token-tally.js';
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
  /** Client keys: the proxy's key-set stream and the scopes and usage of keyed requests. */
  keys?: KeyRing;
  /** This computer's name on the endpoint: a key limited to other computers is refused here too. */
  machine?: string;
}

/** A keyed request's body is read whole to check its model: at most this much (base64 images). */
const MAX_CHECKED_BODY = 64 << 20;
/** A model list answer is read whole to filter it. */
const MAX_LIST_BODY = 8 << 20;

/** What a keyed request adds to the relay: a body already read, a list to filter, tokens to count. */
interface KeyedRelay {
  body?: Buffer;
  filterModels?: readonly string[];
  tally: TokenTally;
  keyId: string;
  /** The key was made here: its usage is counted here; else the proxy takes the tokens to the key's computer. */
  own: boolean;
}

function readWhole(stream: ServerHttp2Stream, limit: number): Promise<Buffer | 'too-large' | 'broken'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        stream.pause();
        resolve('too-large');
        return;
      }
      chunks.push(c);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('close', () => resolve('broken'));
  });
}

/** Ollama's own error shape for the path (OpenAI's on /v1), so every client library shows the message to its user. */
function respondError(stream: ServerHttp2Stream, method: string | undefined, path: string | undefined, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  const body = errorBody(path, status, message, code);
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

function tokensTrailer(keyed: KeyedRelay): Record<string, string> {
  keyed.tally.end();
  return { [KEY_TOKENS_TRAILER]: `${keyed.tally.tokensIn} ${keyed.tally.tokensOut}` };
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
    // The proxy's own stream for the key set (never a client's: relayed requests carry the tunnel authority).
    if (headers[':authority'] === CONTROL_AUTHORITY && headers[':path'] === KEY_SET_PATH && this.options.keys) {
      serveKeySet(stream, this.options.keys);
      return;
    }
    if (headers[':authority'] === CONTROL_AUTHORITY && headers[':path'] === KEY_USAGE_PATH && this.options.keys) {
      serveUsageReport(stream, headers[':method'], this.options.keys);
      return;
    }
    const method = headers[':method'];
    const decision = decide(
      this.options.policy(),
      { method, path: headers[':path'], authority: headers[':authority'], scheme: headers[':scheme'] },
      target.host,
    );
    const routeName = decision.route?.name ?? 'unknown';
    events.requestStarted(routeName);
    if (!decision.allow) {
      this.refuse(stream, headers, routeName, decision.status, decision.code, decision.message, decision.allowHeader ? { allow: decision.allowHeader } : {});
      return;
    }
    const keyId = headers[KEY_ID_HEADER];
    if (typeof keyId !== 'string') return this.relay(stream, headers, method, decision, routeName, undefined);
    const mine = this.options.keys?.get(keyId);
    // A key made on another of the user's computers comes with its scope, set by the proxy alone
    // (it drops the header from what clients send); this computer's policy still applies on top.
    const scopeHeader = headers[KEY_SCOPE_HEADER];
    const scope = mine || typeof scopeHeader !== 'string' ? undefined : decodeKeyScope(scopeHeader);
    if (scope && !scope.ok) return this.refuse(stream, headers, routeName, 400, 'key-scope-invalid', `the cloud sent a key scope this computer cannot read: ${scope.message}`);
    const key: KeyRules | undefined = mine ?? (scope?.ok ? keyFromScope(keyId, scope.value) : undefined);
    const refusal = keyRefusal(key, decision.route, decision.path, this.options.policy()) ?? (key && this.options.machine ? machineRefusal(key, this.options.machine) : undefined);
    if (refusal || !key) {
      const r = refusal ?? { status: 401, code: 'key-unknown', message: 'this key is not known to your computer' };
      this.refuse(stream, headers, routeName, r.status, r.code, r.message);
      return;
    }
    const keyed: KeyedRelay = { tally: new TokenTally(), keyId: key.id, own: mine !== undefined, ...(key.models && LIST_ROUTES.has(routeName) ? { filterModels: key.models } : {}) };
    if (!needsModelCheck(key, decision.route) || stream.endAfterHeaders) return this.relay(stream, headers, method, decision, routeName, keyed);
    void readWhole(stream, MAX_CHECKED_BODY).then((body) => {
      if (body === 'broken') return events.requestFinished(routeName, 'aborted', undefined);
      if (body === 'too-large') {
        return this.refuse(stream, headers, routeName, 413, 'body-too-large', `a request made with a key that has a model list may carry at most ${MAX_CHECKED_BODY >> 20} MiB`);
      }
      const denied = bodyRefusal(key, decision.route, body);
      if (denied) return this.refuse(stream, headers, routeName, denied.status, denied.code, denied.message);
      this.relay(stream, headers, method, decision, routeName, { ...keyed, body });
    });
  }

  private refuse(stream: ServerHttp2Stream, headers: H2Headers, routeName: string, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
    respondError(stream, headers[':method'], headers[':path'], status, code, message, extra);
    // Whatever body the cloud still sends for a refused request is dropped unread.
    stream.resume();
    this.options.events.requestFinished(routeName, 'refused', status);
  }

  private relay(
    stream: ServerHttp2Stream,
    headers: H2Headers,
    method: string | undefined,
    decision: { path: string; query: string },
    routeName: string,
    keyed: KeyedRelay | undefined,
  ): void {
    const { target, events } = this.options;
    const outHeaders = relayableRequestHeaders(headers as http.IncomingHttpHeaders);
    // Ollama checks Host against its own name (a foreign Host gets 403): send the target's.
    outHeaders['host'] = target.host;
    // HEADERS with END_STREAM: no body. Otherwise one follows, whatever the method: Node frames a
    // GET, HEAD or DELETE body only when told to (it would send the bytes unframed).
    const hasBody = !stream.endAfterHeaders;
    if (keyed?.body) {
      delete outHeaders['transfer-encoding'];
      outHeaders['content-length'] = String(keyed.body.length);
    } else if (hasBody && outHeaders['content-length'] === undefined) outHeaders['transfer-encoding'] = 'chunked';
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
      if (keyed) {
        keyed.tally.end();
        if (keyed.own) this.options.keys?.recordUse(keyed.keyId, keyed.tally.tokensIn, keyed.tally.tokensOut);
      }
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
    if (keyed?.body) {
      events.bytes('in', keyed.body.length);
      request.end(keyed.body);
    } else {
      stream.on('data', (chunk: Buffer) => events.bytes('in', chunk.length));
      if (hasBody) stream.pipe(request);
      else request.end();
    }

    request.on('error', (err: NodeJS.ErrnoException) => {
      if (finished) return;
      if (!stream.headersSent) {
        const problem = describeConnectError(err, target.url.origin);
        if (err.code && UNREACHABLE_CODES.has(err.code)) events.ollamaReachable(false, problem);
        respondError(stream, method, headers[':path'], 502, 'ollama-unreachable', problem);
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
        respondError(stream, method, headers[':path'], 502, 'ollama-bad-status', `Ollama at ${target.url.origin} answered with an invalid HTTP status (${status})`);
        finish('failed', 502);
        return;
      }
      // The counts go back to the proxy, which takes them to the key's own computer when it is another.
      const trailers = keyed ? { trailers: () => tokensTrailer(keyed) } : {};
      if (keyed?.filterModels && status === 200) return this.filtered(stream, method, response, { ...keyed, filterModels: keyed.filterModels }, routeName, finish);
      const responded = respond(stream, { method, status, headers: relayableResponseHeaders(response.headers), ...trailers });
      if (responded !== 'body') {
        // A head-only answer (HEAD, 204, 304) is complete with its head.
        response.resume();
        finish(responded === 'complete' ? 'ok' : 'failed', status);
        return;
      }
      copyWithBackpressure(response, stream, {
        onChunk: (chunk) => {
          events.bytes('out', chunk.length);
          keyed?.tally.feed(chunk);
        },
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

  /** A model list for a key with an allow-list: read whole (it is small), filtered, sent with its new length. */
  private filtered(
    stream: ServerHttp2Stream,
    method: string | undefined,
    response: http.IncomingMessage,
    keyed: KeyedRelay & { filterModels: readonly string[] },
    routeName: string,
    finish: (outcome: 'ok' | 'aborted' | 'failed', status?: number) => void,
  ): void {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_LIST_BODY) return void response.destroy();
      chunks.push(c);
    });
    response.on('end', () => {
      if (!response.complete) return;
      const body = filterModelList(routeName, Buffer.concat(chunks), keyed.filterModels);
      this.options.events.bytes('out', body.length);
      const headers = relayableResponseHeaders(response.headers);
      respond(stream, { method, status: 200, headers: { ...headers, 'content-length': body.length }, body, trailers: () => tokensTrailer(keyed) });
      finish('ok', 200);
    });
    response.on('close', () => {
      if (!response.complete) {
        abort(stream);
        finish('failed', 200);
      }
    });
  }
}
