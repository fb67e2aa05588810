/**
 * Answers in Ollama's error shape for the request's path (error-shape.ts: `{"error": "..."}`, or
 * OpenAI's `{"error":{"message",...}}` on /v1 as Ollama does there), so every client shows the
 * message, with the refusal's stable code in a header; the status is the code's (errors.ts).
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorBody } from '@cloudtolocalllm/bridge/connection/error-shape';
import { REFUSAL_HEADER } from '@cloudtolocalllm/bridge/connection/protocol';
import { ERROR_STATUS, type ErrorCode } from '../errors.js';

export function sendOllamaError(res: ServerResponse, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  const status = ERROR_STATUS[code];
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // The response's request (Node sets res.req): its path picks the shape.
  const body = errorBody(res.req?.url, status, message, code);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    [REFUSAL_HEADER]: code,
    ...headers,
  });
  res.end(body);
}

/**
 * Answers on a raw socket (an upgrade refused, a protocol error) and lets it go once written:
 * a client that never closes its side must not keep the socket, nor what is tied to its 'close'.
 */
export function endSocket(socket: Duplex, response: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(response, () => socket.destroy());
}

/** An answer written on a raw socket: refused upgrades, client protocol errors (huge headers, garbage) caught before a request object exists. */
export function rawHttpError(code: ErrorCode, message: string): string {
  const status = ERROR_STATUS[code];
  const body = JSON.stringify({ error: message });
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    // Ours, as on every refusal: a bridge tells it from a middlebox's answer (dial-h2.ts).
    `${REFUSAL_HEADER}: ${code}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}
