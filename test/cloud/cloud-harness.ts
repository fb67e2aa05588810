/**
 * The cloud server as tests use it: embedded OpenID issuer, real JWT verification, a chosen
 * proxy runtime, and users who sign in through the real PKCE flow (as an HTTP client).
 */
import net from 'node:net';
import { Bridge, type BridgeOptions } from '@cloudtolocalllm/bridge';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { MemoryAuditLog } from '@cloudtolocalllm/server/audit';
import { startCloudServer, type CloudServer } from '@cloudtolocalllm/server/cloud-server';
import { loadConfig } from '@cloudtolocalllm/server/config';
import { FAST_BACKOFF, FAST_HEARTBEAT } from '../tunnel/harness.js';

export interface Cloud {
  server: CloudServer;
  url: string;
  audit: MemoryAuditLog;
  /** Signs a user in through the embedded issuer's PKCE flow; returns their access token. */
  signIn(username: string): Promise<string>;
  bridge(token: string, ollamaUrl: string, extra?: Partial<BridgeOptions>): Bridge;
  close(): Promise<void>;
}

export async function startCloud(options: { runtime?: 'process' | 'docker'; env?: Record<string, string>; accessTokenTtlSec?: number } = {}): Promise<Cloud> {
  const config = loadConfig({ ...options.env }, ['--port', '0', '--runtime', options.runtime ?? 'process']);
  const audit = new MemoryAuditLog();
  const { silentLogger } = await import('@cloudtolocalllm/server/log');
  const server = await startCloudServer(config, {
    audit,
    log: silentLogger,
    heartbeat: FAST_HEARTBEAT,
    ...(options.accessTokenTtlSec ? { accessTokenTtlSec: options.accessTokenTtlSec } : {}),
  });
  const bridges: Bridge[] = [];
  return {
    server,
    url: server.url,
    audit,
    async signIn(username) {
      const issuer = server.embeddedIssuer;
      if (!issuer) throw new Error('tests sign in through the embedded issuer only');
      const tokens = await headlessSignIn({ issuer: issuer.issuer, clientId: issuer.desktopClientId, audience: server.audience, username });
      return tokens.accessToken;
    },
    bridge(token, ollamaUrl, extra = {}) {
      const b = new Bridge({
        proxyUrl: `${server.url.replace(/^http/, 'ws')}/ws/bridge`,
        getToken: () => token,
        ollamaUrl,
        heartbeat: FAST_HEARTBEAT,
        backoff: FAST_BACKOFF,
        ...extra,
      });
      bridges.push(b);
      return b;
    },
    async close() {
      await Promise.all(bridges.map((b) => b.stop()));
      await server.close();
    },
  };
}

export function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}

/**
 * Writes `request` (raw bytes: malformed, partial) to the server and resolves with everything it
 * answered once it closes the connection, or after `timeoutMs` of silence.
 */
export function raw(port: number, request: string | Buffer, timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let answer = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (answer += d));
    s.on('close', () => resolve(answer));
    s.on('error', reject);
    s.setTimeout(timeoutMs, () => s.destroy());
    s.write(request);
  });
}
