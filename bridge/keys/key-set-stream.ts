/**
 * The bridge's end of the key-set stream (docs/tunnel.md, "Client keys"): the proxy opens it right
 * after the tunnel comes up; the bridge answers with NDJSON, the current set as one line at once
 * and a new line whenever the set changes. The stream lives as long as the tunnel; it is never
 * relayed to Ollama.
 */
import type { ServerHttp2Stream } from 'node:http2';
import { endBody, isOpen, respond, writeBody } from '../forward/respond.js';
import type { KeyRing } from './key-ring.js';

export function serveKeySet(stream: ServerHttp2Stream, ring: KeyRing): void {
  if (respond(stream, { method: 'GET', status: 200, headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' } }) !== 'body') return;
  const send = (): void => {
    if (!isOpen(stream)) return;
    writeBody(stream, Buffer.from(JSON.stringify(ring.line()) + '\n'));
  };
  send();
  ring.on('change', send);
  stream.on('close', () => ring.off('change', send));
  // The proxy ends its side when it closes the stream; answer in kind.
  stream.on('end', () => endBody(stream));
  stream.resume();
}
