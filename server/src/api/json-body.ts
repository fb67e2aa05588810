/** Reads a small JSON request body with a size limit; an empty body counts as `{}`. A refusal has its code (errors.ts). */
import type { IncomingMessage } from 'node:http';

export type JsonBody =
  | { ok: true; value: Record<string, unknown> }
  | { ok: false; code: 'bad-request' | 'body-too-large' | 'unsupported-media-type'; message: string };

export function readJsonBody(req: IncomingMessage, limit: number): Promise<JsonBody> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      resolve({ ok: false, code: 'body-too-large', message: `the request body is ${declared} bytes; this endpoint takes at most ${limit}` });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('error', () => resolve({ ok: false, code: 'bad-request', message: 'the request body could not be read' }));
    req.on('end', () => {
      if (over) return resolve({ ok: false, code: 'body-too-large', message: `the request body is over ${limit} bytes; this endpoint takes at most ${limit}` });
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (!text) return resolve({ ok: true, value: {} });
      const type = String(req.headers['content-type'] ?? 'application/json');
      if (!type.includes('json')) return resolve({ ok: false, code: 'unsupported-media-type', message: `send JSON (content-type application/json), not ${type}` });
      try {
        const value = JSON.parse(text) as unknown;
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          return resolve({ ok: false, code: 'bad-request', message: 'the request body must be a JSON object' });
        }
        resolve({ ok: true, value: value as Record<string, unknown> });
      } catch (e) {
        resolve({ ok: false, code: 'bad-request', message: `the request body is not valid JSON: ${(e as Error).message}` });
      }
    });
  });
}
