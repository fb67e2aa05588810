/** Prometheus metrics of one streaming proxy, in its own registry (no global state). */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'ctll_proxy_requests_total',
    help: 'Ollama API requests relayed, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: 'ctll_proxy_bytes_total',
    help: 'Body bytes relayed, by direction (up: to the bridge, down: to the client)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly activeStreams = new Gauge({
    name: 'ctll_proxy_active_streams',
    help: 'Requests currently streaming through the tunnel',
    registers: [this.registry],
  });
  readonly bridgeConnected = new Gauge({
    name: 'ctll_proxy_bridge_connected',
    help: 'How many of the user\'s computers (bridges) are connected: 0 when none',
    registers: [this.registry],
  });
  readonly bridgeConnections = new Counter({
    name: 'ctll_proxy_bridge_connections_total',
    help: 'Bridge connection attempts, by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'ctll_proxy_auth_failures_total',
    help: 'Refused credentials, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(withProcessMetrics = false) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
