/**
 * The bridge's end of a usage report (docs/tunnel.md, "One key, every computer"): the proxy
 * POSTs one KeyUsageReport for a request that another of the user's computers served with a key
 * made here, so `keys list` and Settings count every use where the key lives. On the control
 * authority only, which no relayed client request carries; never relayed to Ollama.
 */
import type { ServerHttp2Stream } from 'node:http2';
import { parseKeyUsageReport } from '../connection/client-key.js';
import { respond } from '../forward/respond.js';
import type { KeyRing } from './key-ring.js';

/** A report is one small JSON object. */
const MAX_REPORT = 1024;

function answer(stream: ServerHttp2Stream, method: string | undefined, status: number, message?: string): void {
  const body = message === undefined ? undefined : JSON.stringify({ error: message });
  respond(stream, {
    method,
    status,
    headers: body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) },
    ...(body === undefined ? {} : { body }),
    stopUpload: true,
  });
}

export function serveUsageReport(stream: ServerHttp2Stream, method: string | undefined, ring: KeyRing): void {
  if (method !== 'POST') return answer(stream, method, 405, 'a usage report is POSTed');
  const chunks: Buffer[] = [];
  let size = 0;
  stream.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= MAX_REPORT) chunks.push(c);
  });
  stream.on('end', () => {
    if (size > MAX_REPORT) return answer(stream, method, 413, `a usage report has at most ${MAX_REPORT} bytes`);
    const report = parseKeyUsageReport(Buffer.concat(chunks).toString('utf8'));
    if (!report.ok) return answer(stream, method, 400, report.message);
    // A key revoked meanwhile: its usage goes with it.
    if (!ring.get(report.value.id)) return answer(stream, method, 404, 'no such key on this computer');
    ring.recordUse(report.value.id, report.value.tokensIn, report.value.tokensOut);
    answer(stream, method, 204);
  });
}
