/** Reads the start of a small answer (an error, a renewal): a few KiB at most, never the whole of a hostile one. */
import type { IncomingMessage } from 'node:http';

export function readSmallBody(res: IncomingMessage, limit = 4096): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      if (body.length < limit) body += c;
    });
    res.on('end', () => resolve(body));
    res.on('error', () => resolve(body));
  });
}
