/**
 * The address a request came from, as the audit log and the per-address limits see it. Behind
 * the deployed stack's nginx every connection comes from nginx, which replaces X-Real-IP with the
 * address it saw (server/deploy/nginx/snippets/proxy-headers.conf); only then, and only from a
 * loopback peer, is the header believed (CTLL_TRUST_PROXY). A client's own X-Real-IP never counts.
 */
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

export function clientAddress(req: IncomingMessage, trustRealIp: boolean): string {
  const peer = (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:(?=\d+\.)/, '');
  if (!trustRealIp || !LOOPBACK.test(peer)) return peer;
  const forwarded = req.headers['x-real-ip'];
  return typeof forwarded === 'string' && isIP(forwarded.trim()) ? forwarded.trim() : peer;
}
