/**
 * Asks the user's streaming proxy which of the user's computers are connected (issue 10), for
 * /api/proxy/status: with the proxy's secret, a timeout, never throwing (a proxy that does not
 * answer shows no computers; the status says the rest).
 */
import http from 'node:http';
import type { ComputerStatus } from '@cloudtolocalllm/api-contract';
import { PROXY_COMPUTERS_PATH } from '@cloudtolocalllm/bridge/connection/protocol';
import { readSmallBody } from '@cloudtolocalllm/bridge/connection/small-body';
import type { ForwardTarget } from './ollama-forward.js';

/** Names, models, addresses of at most CTLL_MAX_BRIDGES computers: far less than this. */
const MAX_BYTES = 1 << 20;

function isComputer(c: unknown): c is ComputerStatus {
  const v = c as Partial<ComputerStatus> | null;
  return typeof v?.name === 'string' && Array.isArray(v.models) && v.models.every((m) => typeof m === 'string') && typeof v.inFlight === 'number';
}

export function computersOnProxy(target: ForwardTarget, timeoutMs = 3_000): Promise<ComputerStatus[]> {
  const url = new URL(target.endpoint);
  return new Promise((resolve) => {
    const req = http.get(
      { hostname: url.hostname, port: url.port, path: PROXY_COMPUTERS_PATH, headers: { authorization: `Bearer ${target.secret}` }, timeout: timeoutMs },
      (res) =>
        void readSmallBody(res, MAX_BYTES).then((text) => {
          if (res.statusCode !== 200) return resolve([]);
          try {
            const list = (JSON.parse(text) as { computers?: unknown }).computers;
            resolve(
              Array.isArray(list)
                ? list.filter(isComputer).map((c) => ({ name: c.name, models: c.models, connectedSince: c.connectedSince ?? null, inFlight: c.inFlight, address: c.address ?? null, transport: c.transport === 'h2' || c.transport === 'websocket' ? c.transport : null }))
                : [],
            );
          } catch {
            resolve([]);
          }
        }),
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve([]));
  });
}
