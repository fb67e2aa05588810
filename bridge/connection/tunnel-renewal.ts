/**
 * Keeping a tunnel's credential alive (docs/tunnel.md, "Credentials"): a tunnel through the cloud
 * server lives only while the token it was opened with does, so before that token expires the
 * bridge sends a fresh one to the cloud server's RENEW_PATH, naming the tunnel. The cloud server
 * verifies it, as it verifies every token, and tells the proxy the new expiry.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { certificateProblem } from './certificate-errors.js';
import { BRIDGE_USER_AGENT, RENEW_PATH } from './protocol.js';
import { readSmallBody } from './small-body.js';

/** The renewal endpoint beside a cloud server's `/ws/bridge`; none for a proxy run alone. */
export function renewUrl(proxyUrl: URL): URL | undefined {
  if (!proxyUrl.pathname.endsWith('/ws/bridge')) return undefined;
  const url = new URL(proxyUrl.href);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = url.pathname.slice(0, -'/ws/bridge'.length) + RENEW_PATH;
  url.search = '';
  return url;
}

/**
 * When to renew a credential that expires at `expiresAt`: a quarter of its remaining life
 * before, at most a minute before (tokens are refreshed in their last minute), and never
 * sooner than in a second.
 */
export function renewalDelay(expiresAt: number, now = Date.now()): number {
  const left = expiresAt - now;
  return Math.max(1_000, left - Math.min(60_000, left / 4));
}

/** After a renewal that did not extend the deadline (the token was not fresher yet, or the cloud failed). */
export function retryDelay(expiresAt: number, now = Date.now()): number {
  return Math.max(1_000, (expiresAt - now) / 4);
}

export type RenewalResult = { ok: true; expiresAt: number } | { ok: false; status: number; error: string };

export function renewTunnel(url: URL, token: string, tunnel: string, ca?: string | Buffer | Array<string | Buffer>): Promise<RenewalResult> {
  const body = JSON.stringify({ tunnel });
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    const req = lib.request(
      url,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': BRIDGE_USER_AGENT },
        timeout: 15_000,
        ...(ca !== undefined ? { ca: [...tls.rootCertificates, ...(Array.isArray(ca) ? ca : [ca])] } : {}),
      },
      (res) =>
        void readSmallBody(res).then((text) => {
          let parsed: { expiresAt?: unknown; error?: unknown } = {};
          try {
            parsed = JSON.parse(text) as typeof parsed;
          } catch {
            /* reported below */
          }
          if (res.statusCode === 200 && typeof parsed.expiresAt === 'number') resolve({ ok: true, expiresAt: parsed.expiresAt });
          else resolve({ ok: false, status: res.statusCode ?? 0, error: typeof parsed.error === 'string' ? parsed.error : `HTTP ${res.statusCode}` });
        }),
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', (e) => resolve({ ok: false, status: 0, error: certificateProblem(e)?.message ?? e.message }));
    req.end(body);
  });
}
