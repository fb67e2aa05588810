/** The cloud server's Prometheus metrics, in its own registry. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly proxiesRunning = new Gauge({ name: 'ctll_proxies_running', help: 'Streaming proxies running', registers: [this.registry] });
  readonly proxiesMax = new Gauge({ name: 'ctll_proxies_max', help: 'Proxies this server runs at most (CTLL_MAX_PROXIES)', registers: [this.registry] });
  readonly proxyStarts = new Counter({
    name: 'ctll_proxy_starts_total',
    help: 'Proxy starts, by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly proxyStops = new Counter({
    name: 'ctll_proxy_stops_total',
    help: 'Proxy stops, by reason (user: asked by its user, idle, died: ended on its own, replaced: failed its health checks, shutdown, reconcile: left by an earlier server)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly proxyStopSeconds = new Histogram({
    name: 'ctll_proxy_stop_seconds',
    help: 'Time to stop and remove a proxy (container and network), by reason',
    labelNames: ['reason'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly healthFailures = new Counter({
    name: 'ctll_proxy_health_failures_total',
    help: 'Failed proxy health checks (three in a row replace the proxy)',
    registers: [this.registry],
  });
  readonly proxiesUnhealthy = new Gauge({
    name: 'ctll_proxies_unhealthy',
    help: 'Running proxies whose last health check failed',
    registers: [this.registry],
  });
  readonly provisioningSeconds = new Histogram({
    name: 'ctll_proxy_provisioning_seconds',
    help: 'Time from start request to a healthy proxy',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  /** Read at each scrape: the runtime's spares ready now (none without the Docker runtime). */
  spares: () => number = () => 0;
  readonly sparesReady: Gauge = new Gauge({
    name: 'ctll_proxy_spares',
    help: 'Proxies started ahead of their users and ready to be taken (CTLL_PROXY_SPARES; Docker runtime)',
    registers: [this.registry],
    collect: () => this.sparesReady.set(this.spares()),
  });
  readonly startPhaseSeconds = new Histogram({
    name: 'ctll_proxy_start_phase_seconds',
    help: 'Where a proxy start spends its time, by phase (firewall, cleanup, claim of a spare, network, container, start, boot; Docker runtime only)',
    labelNames: ['phase'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly authOutcomes = new Counter({
    name: 'ctll_auth_total',
    help: 'Authentications by route (api, ollama, bridge, key) and outcome (ok, or the reason of the refusal)',
    labelNames: ['route', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'ctll_auth_failures_total',
    help: 'Refused credentials, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly bytesRelayed = new Counter({
    name: 'ctll_bytes_relayed_total',
    help: 'Bytes relayed between clients and proxies, by direction (up: to the proxy, down: to the client)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly activeStreams = new Gauge({
    name: 'ctll_active_streams',
    help: 'Ollama API requests currently relayed',
    registers: [this.registry],
  });
  readonly bridgesConnected = new Gauge({
    name: 'ctll_bridges_connected',
    help: 'Desktop bridges currently connected',
    registers: [this.registry],
  });
  readonly edgeRoutes = new Counter({
    name: 'ctll_edge_routes_total',
    help: 'Edge routing answers to nginx (docs/edge-routing.md): route direct (nginx relays to the proxy) or through (the api-backend relays), with the reason for through',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });
  readonly limitRefusals = new Counter({
    name: 'ctll_limit_refusals_total',
    help: 'Requests refused by a limit, by limit',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });

  readonly bodyThrottleSeconds = new Counter({
    name: 'ctll_body_throttle_seconds_total',
    help: 'Time request bodies were held back by the per-user body rate limit',
    registers: [this.registry],
  });

  constructor(processMetrics = true) {
    if (processMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
