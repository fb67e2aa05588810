/**
 * Keeps an open tunnel's credential renewed: before it expires, asks the cloud server to extend
 * it with a fresh token, for as long as the tunnel is open. A tunnel whose renewal fails ends at
 * its deadline (the proxy closes it with `credential-expired`) and the supervisor reconnects
 * with a fresh token then.
 */
import type { TunnelConnection } from '../connection/tunnel-dialer.js';
import { renewalDelay, renewTunnel, renewUrl, retryDelay } from '../connection/tunnel-renewal.js';

export interface RenewalOptions {
  proxyUrl: URL;
  getToken: () => string | Promise<string>;
  ca?: string | Buffer | Array<string | Buffer>;
  /** The credential now lasts until then. */
  renewed: (expiresAt: number) => void;
}

/** Starts renewing; the returned function stops it (call it once the tunnel has ended). */
export function keepRenewed(connection: TunnelConnection, options: RenewalOptions): () => void {
  const tunnel = connection.tunnel;
  const url = renewUrl(options.proxyUrl);
  if (!tunnel?.expiresAt || !url) return () => undefined;
  let expiresAt = tunnel.expiresAt;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number): void => {
    timer = setTimeout(() => void attempt(), ms);
  };
  const attempt = async (): Promise<void> => {
    let result;
    try {
      result = await renewTunnel(url, await options.getToken(), tunnel.id, options.ca);
    } catch (e) {
      result = { ok: false as const, status: 0, error: e instanceof Error ? e.message : String(e) };
    }
    if (stopped) return;
    if (result.ok && result.expiresAt > expiresAt) {
      expiresAt = result.expiresAt;
      options.renewed(expiresAt);
      return schedule(renewalDelay(expiresAt));
    }
    // The tunnel is gone (409): its close is on the way. Otherwise try again before the deadline.
    if (!result.ok && result.status === 409) return;
    if (Date.now() < expiresAt) schedule(retryDelay(expiresAt));
  };
  schedule(renewalDelay(expiresAt));
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
