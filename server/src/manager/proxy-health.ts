/** Asks a proxy how it is: GET /health, with a timeout, never throwing. */
import http from 'node:http';
import type { ProxyHealth } from '../proxy/streaming-proxy.js';

export type HealthCheck = { ok: true; health: ProxyHealth } | { ok: false; error: string };

export function checkProxyHealth(endpoint: string, timeoutMs = 3_000): Promise<HealthCheck> {
  return new Promise((resolve) => {
    const req = http.get(`${endpoint}/health`, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 8192) body += c;
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve({ ok: false, error: `health answered HTTP ${res.statusCode}` });
        try {
          resolve({ ok: true, health: JSON.parse(body) as ProxyHealth });
        } catch {
          resolve({ ok: false, error: 'health answered something that is not JSON' });
        }
      });
      res.on('error', (e) => resolve({ ok: false, error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ ok: false, error: e.message }));
  });
}
