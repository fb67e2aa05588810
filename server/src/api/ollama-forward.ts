/**
 * Forwards one `/ollama/*` request to the caller's own proxy, streaming both ways. The proxy is
 * chosen from the verified token's subject only, never from the path or a header, and the
 * user's token is swapped for the proxy's own secret: the user's credential never leaves here.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { relayableRequestHeaders } from '@cloudtolocalllm/bridge/connection/headers';
import { MACHINE_HEADER, MAX_MACHINE_NAME_LENGTH } from '@cloudtolocalllm/bridge/connection/protocol';
import { REFUSAL_HEADER } from '@cloudtolocalllm/bridge/connection/protocol';
import { sendOllamaError } from '../proxy/ollama-errors.js';
import { hasBody } from '../proxy/relay.js';
import { isRelayableStatus, relayedResponseHeaders } from '../proxy/response-head.js';
import { copyAnswer } from '../relayed-head.js';
import { BodyGate, BodyStallError, type BodyGateOptions } from './body-gate.js';
import type { ServerMetrics } from './server-metrics.js';

/** Keep-alive to proxies; no socket timeout: generations run for many minutes. */
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, scheduling: 'lifo' });

export interface ForwardTarget {
  endpoint: string;
  secret: string;
}

/** A keyed request's additions: headers for the proxy, and a look at the answer's status. */
export interface ForwardExtra {
  headers?: Record<string, string>;
  /** Returns headers the cloud server adds to the answer itself (the proxy's challenge does not pass the filter). */
  answered?: (status: number, refusal: string | undefined) => Record<string, string> | undefined;
}

export function forwardOllamaRequest(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  target: ForwardTarget,
  metrics: ServerMetrics,
  gate: BodyGateOptions,
  onActivity: () => void,
  extra: ForwardExtra = {},
): void {
  const url = new URL(target.endpoint);
  const headers = { ...relayableRequestHeaders(req.headers), ...extra.headers };
  // The client's pin to one of the user's computers (docs/clients.md): the one header of ours a
  // client may send, checked by the proxy against the computers connected.
  const machine = req.headers[MACHINE_HEADER];
  if (typeof machine === 'string') headers[MACHINE_HEADER] = machine.slice(0, MAX_MACHINE_NAME_LENGTH + 1);
  headers['authorization'] = `Bearer ${target.secret}`;
  const withBody = hasBody(req.headers);
  // Node frames a GET, HEAD or DELETE body only when told to; the client's own framing is hop-by-hop.
  if (withBody && headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
  metrics.activeStreams.inc();
  let finished = false;
  const done = (): void => {
    if (finished) return;
    finished = true;
    metrics.activeStreams.dec();
  };
  const upstream = http.request({
    hostname: url.hostname,
    port: url.port,
    method: req.method,
    path,
    headers,
    agent,
  });
  req.on('data', (c: Buffer) => {
    metrics.bytesRelayed.inc({ direction: 'up' }, c.length);
    onActivity();
  });
  // The body goes through the gate (rate per user, stall timeout) on its way up.
  // A request without a body has nothing to gate (and nothing that could stall).
  const body = withBody ? new BodyGate(gate) : undefined;
  if (body) req.pipe(body).pipe(upstream);
  else {
    req.resume();
    upstream.end();
  }
  body?.on('error', (e: Error) => {
    upstream.destroy();
    if (e instanceof BodyStallError && !res.headersSent) {
      // Close the connection: the rest of a stalled body must not be read as the next request.
      sendOllamaError(res, 'body-stalled', `${e.message}; send the whole body without pausing`, { connection: 'close' });
    } else {
      res.destroy();
    }
    done();
  });
  upstream.on('response', (proxied) => {
    // The proxy filters its bridge's answers already; a proxy is still no reason to trust one.
    const status = proxied.statusCode ?? 0;
    const refusal = proxied.headers[REFUSAL_HEADER];
    const added = extra.answered?.(status, typeof refusal === 'string' ? refusal : undefined);
    if (!isRelayableStatus(status)) {
      proxied.destroy();
      sendOllamaError(res, 'bad-answer', `your cloud proxy answered with an invalid HTTP status (${status})`);
      done();
      return;
    }
    res.writeHead(status, { ...relayedResponseHeaders(proxied.headers), ...added });
    const head = copyAnswer(proxied, res, {
      onChunk: (c) => {
        metrics.bytesRelayed.inc({ direction: 'down' }, c.length);
        onActivity();
      },
    });
    proxied.on('end', () => {
      if (proxied.complete) {
        res.end();
        done();
      }
    });
    // The proxy cut its response (the tunnel broke mid-stream): cut ours too, never end it cleanly.
    proxied.on('close', () => {
      if (!proxied.complete) {
        // What arrived (the proxy's own error line last) goes out first; then the connection
        // closes without the chunked terminator. destroy() alone could drop unflushed bytes.
        head.send();
        if (res.socket && !res.socket.destroyed) res.socket.destroySoon();
        else res.destroy();
        done();
      }
    });
    proxied.on('error', () => undefined);
  });
  upstream.on('error', (e: NodeJS.ErrnoException) => {
    if (body?.errored) return; // the gate's error already answered
    if (!res.headersSent) {
      sendOllamaError(res, 'proxy-unreachable', `your cloud proxy did not answer (${e.code ?? e.message}); try again`);
    } else {
      res.destroy();
    }
    done();
  });
  // The client went away: abort toward the proxy, which resets the stream to the bridge.
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
    // An answer that came before the whole body (a refusal) leaves the gate's timers running otherwise.
    body?.destroy();
    done();
  });
}
