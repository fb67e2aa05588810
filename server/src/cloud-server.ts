/**
 * Puts the cloud server together from its configuration: the token verifier (Auth0, or the
 * embedded issuer), the proxy runtime (Docker when an engine answers and can run proxies, with
 * the proxy image built first if it is missing or stale; else in-process), the
 * proxy manager (reconciled with what already runs) and the HTTP API.
 */
import { createAuditLog, type AuditLog } from './audit.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientConfig } from '@cloudtolocalllm/api-contract';
import { ApiServer } from './api/api-server.js';
import { staticSite } from './api/static-files.js';
import { ServerMetrics } from './api/server-metrics.js';
import { registerFirewallMetrics, registerHostLimitMetrics, registerResourceMetrics } from './api/operator-metrics.js';
import { ResourceSampler } from './manager/proxy-resources.js';
import { CgroupReader } from './runtime/docker/cgroup-usage.js';
import { JwtAuthenticator } from './auth/jwt-authenticator.js';
import { JwtVerifier } from './auth/jwt-verifier.js';
import { ClusterNode } from './cluster/cluster-node.js';
import { Membership } from './cluster/membership.js';
import { loadPeerTls } from './cluster/peer-tls.js';
import type { ServerConfig } from './config.js';
import { startEmbeddedIssuer, type EmbeddedIssuer } from './issuer/embedded-issuer.js';
import { createLogger, type Logger } from './log.js';
import { ProxyManager } from './manager/proxy-manager.js';
import { DockerRuntime } from './runtime/docker/docker-runtime.js';
import { ensureProxyImage } from './runtime/docker/proxy-image.js';
import { hostLimitWarnings, readHostLimits } from './runtime/docker/host-limits.js';
import { capacity } from './runtime/docker/subnet-allocator.js';
import { ProcessRuntime } from './runtime/process-runtime.js';
import type { ProxyRuntime } from './runtime/runtime.js';
import type { HeartbeatOptions } from '@cloudtolocalllm/bridge/connection/heartbeat';

export interface CloudServer {
  url: string;
  /** Edge routing's address (config.edgePort), on loopback; undefined when off. */
  edgeUrl?: string;
  /** The OpenID issuer tokens must come from. */
  issuer: string;
  audience: string;
  embeddedIssuer?: EmbeddedIssuer;
  runtime: ProxyRuntime;
  manager: ProxyManager;
  api: ApiServer;
  metrics: ServerMetrics;
  /** This node in a cluster of api-backends (config.cluster); undefined on a single node. */
  cluster?: ClusterNode;
  close(): Promise<void>;
}

export interface CloudServerExtras {
  log?: Logger;
  audit?: AuditLog;
  /** Only tests change it (fast heartbeats for the in-process runtime). */
  heartbeat?: HeartbeatOptions;
  /** Extra web client redirect URIs for the embedded issuer. */
  webRedirectUris?: string[];
  /** Folder with the built web client (index.html, app/, docs/); default from the config. */
  webRoot?: string;
  /** Lifetime of the embedded issuer's access tokens (default 10 minutes). */
  accessTokenTtlSec?: number;
}

/**
 * Asks `attempt` again every second until `problem` finds nothing wrong with its answer or
 * `deadline` (ms since the epoch) has passed; the last answer. Logs what it waits for, and why,
 * every 10 s.
 */
async function retryUntil<T>(deadline: number, log: Logger, what: string, attempt: () => Promise<T>, problem: (answer: T) => string | undefined): Promise<T> {
  let logged = 0;
  for (;;) {
    const answer = await attempt();
    const reason = problem(answer);
    if (reason === undefined || Date.now() >= deadline) return answer;
    if (Date.now() - logged >= 10_000) {
      log.info(`waiting for ${what}`, { reason, secondsLeft: Math.ceil((deadline - Date.now()) / 1000) });
      logged = Date.now();
    }
    await new Promise((r) => setTimeout(r, Math.min(1_000, Math.max(0, deadline - Date.now()))));
  }
}

/** What to tell someone whose proxies end up in-process although Docker answers. */
const HOW_TO_ISOLATE = 'Fix that and start again, or pass --runtime docker to refuse to run without Docker isolation.';

/**
 * Docker when it answers and can run proxies (the image exists or can be built, the isolation
 * firewall can be installed), else in-process with a warning that says why; with
 * `--runtime docker` any of these failing stops the start with the reason instead.
 */
async function chooseRuntime(config: ServerConfig, log: Logger, extras: CloudServerExtras): Promise<ProxyRuntime> {
  const processRuntime = (): ProcessRuntime =>
    new ProcessRuntime({ log, responseHeadTimeoutMs: config.guard.responseHeadTimeoutMs, maxConcurrentRequests: config.limits.maxConcurrentRequests, ...(extras.heartbeat ? { heartbeat: extras.heartbeat } : {}) });
  const inProcess = (why: string, reason: string): ProcessRuntime => {
    log.warn(`${why}; proxies run inside this process. Isolation between users is WEAKER (shared process and memory). ${HOW_TO_ISOLATE}`, { reason });
    return processRuntime();
  };
  if (config.runtime === 'process') return processRuntime();
  const required = config.runtime === 'docker';
  const refuse = (what: string): never => {
    throw new Error(`--runtime docker was asked for, but ${what}`);
  };

  // On a Swarm nothing orders a node's services: the filter and the firewall's keeper may come
  // up after this task. Exiting would leave the node without an api-backend until Swarm's next
  // restart, which a returning node was seen to wait 54 s for; waiting here costs nothing.
  const deadline = Date.now() + config.readyWaitMs;
  const probe = await retryUntil(deadline, log, 'the Docker engine', () => DockerRuntime.probe(), (p) => (p.ok ? undefined : p.error));
  if (!probe.ok) {
    if (required) refuse(`the Docker engine does not answer: ${probe.error}`);
    return inProcess('no Docker engine answers', probe.error);
  }
  const runtime = new DockerRuntime({
    image: config.proxyImage,
    subnetRange: config.subnetRange,
    subnetPrefix: config.subnetPrefix,
    firewall: config.firewall,
    ...(config.firewallStatusFile ? { firewallStatusFile: config.firewallStatusFile } : {}),
    engineHealthIntervalMs: config.engineHealthIntervalMs,
    spares: config.proxySpares,
    ...(config.cluster?.self ? { spareHolder: config.cluster.self } : {}),
    ...(config.stack ? { stack: config.stack } : {}),
    responseHeadTimeoutMs: config.guard.responseHeadTimeoutMs,
    maxConcurrentRequests: config.limits.maxConcurrentRequests,
    log,
  });
  const image = await ensureProxyImage({ docker: runtime.docker, image: config.proxyImage, log });
  const firewall = image.ok
    ? await retryUntil(deadline, log, 'the isolation firewall', () => runtime.ensureFirewall().then(() => undefined, (e: Error) => e.message), (reason) => reason)
    : undefined;
  if (!image.ok || firewall !== undefined) {
    await runtime.close();
    const [what, reason] = !image.ok ? [`the proxy image ${config.proxyImage} cannot be made ready`, image.reason] : [config.firewallStatusFile ? 'the isolation firewall is not confirmed' : 'the isolation firewall cannot be installed', firewall!];
    if (required) refuse(`${what}: ${reason}`);
    return inProcess(`the Docker engine answers, but ${what}`, reason);
  }
  log.info('Docker engine found: each user gets an isolated proxy container', { version: probe.version, image: config.proxyImage });
  // The kernel's tables run out long before CPU or memory: say so now, not at user 500.
  const users = capacity(runtime.subnets.plan);
  for (const warning of hostLimitWarnings(readHostLimits(), users)) log.warn('host limit', { warning, subnetCapacity: users });
  return runtime;
}

export async function startCloudServer(config: ServerConfig, extras: CloudServerExtras = {}): Promise<CloudServer> {
  const log = extras.log ?? createLogger({ component: 'cloud-server' }, config.logLevel);
  const audit = extras.audit ?? createAuditLog();
  const metrics = new ServerMetrics();

  const runtime = await chooseRuntime(config, log, extras);
  const manager = new ProxyManager({
    runtime,
    metrics,
    audit,
    log,
    healthIntervalMs: config.healthIntervalMs,
    idleTimeoutMs: config.idleTimeoutMs,
    sweepIntervalMs: config.sweepIntervalMs,
    maxProxies: config.guard.maxProxies,
    startsPerMinute: config.guard.proxyStartsPerMinute,
  });
  await manager.reconcile();
  manager.startTimers();
  if (runtime instanceof DockerRuntime) {
    // After the reconcile, which removed the spares an earlier run of this server left.
    runtime.fillSpares();
    metrics.spares = () => runtime.sparesReady;
    const cgroups = new CgroupReader(config.cgroupRoot);
    const sampler = new ResourceSampler({
      containers: () => manager.containers(),
      read: (id) => cgroups.read(id),
      retain: (ids) => cgroups.retain(ids),
      limits: { memoryBytes: runtime.limits.memoryBytes, cpus: runtime.limits.nanoCpus / 1e9 },
    });
    registerResourceMetrics(metrics.registry, () => sampler.report());
    registerFirewallMetrics(metrics.registry, () => runtime.firewallCounters(), () => manager.bridges());
    const subnetCapacity = capacity(runtime.subnets.plan);
    registerHostLimitMetrics(metrics.registry, () => ({ used: manager.size, capacity: subnetCapacity }));
  }

  // Several api-backends (docs/scaling.md): the peer TLS files are read now, so a wrong path
  // stops the start with its variable named, before anything listens.
  let cluster: ClusterNode | undefined;
  if (config.cluster) {
    try {
      const c = config.cluster;
      cluster = new ClusterNode({ membership: new Membership(c.source), tls: loadPeerTls(c.tls), ...(c.self ? { self: c.self } : {}), listen: c.listen, log, registry: metrics.registry, publishIntervalMs: c.intervalMs, liveness: c.liveness });
    } catch (e) {
      await manager.close({ keepProxies: true });
      throw e;
    }
  }

  // The API listens before the embedded issuer starts, because the issuer's web client must
  // know the API's own origin (its redirect URI). Until sign-in is ready, calls get 503.
  let authenticator: JwtAuthenticator | undefined;
  let clientConfig: ClientConfig | undefined;
  const api = new ApiServer({
    verifier: {
      verifyRequest: async (headers) => {
        if (!authenticator) return { ok: false, reason: 'jwks-unavailable', message: 'the server is still starting' };
        const v = await authenticator.verifyRequest(headers);
        if (!v.ok) return { ok: false, reason: v.reason, message: v.message };
        return v.expiresAt !== undefined ? { ok: true, subject: v.subject, expiresAt: v.expiresAt } : { ok: true, subject: v.subject };
      },
    },
    manager,
    metrics,
    audit,
    log,
    cors: { origins: config.corsOrigins },
    clientConfig: () => clientConfig,
    limits: config.limits,
    ...(config.metricsToken ? { metricsToken: config.metricsToken } : {}),
    metricsRequireToken: config.guard.metricsRequireToken,
    authFailures: { limit: config.guard.authFailureLimit, windowMs: config.guard.authFailureWindowMs },
    keyFailures: { limit: config.guard.keyFailureLimit, windowMs: config.guard.authFailureWindowMs },
    trustRealIp: config.guard.trustRealIp,
    ...(cluster ? { cluster } : {}),
  });
  let url: string;
  try {
    url = await api.listen(config.port, config.host);
  } catch (e) {
    await manager.close({ keepProxies: true });
    throw new Error(`cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`);
  }
  let edgeUrl: string | undefined;
  if (config.edgePort !== undefined) {
    try {
      edgeUrl = await api.listenEdge(config.edgePort);
    } catch (e) {
      await api.close();
      await manager.close({ keepProxies: true });
      throw new Error(`cannot listen for edge routing on 127.0.0.1:${config.edgePort} (CTLL_EDGE_PORT): ${(e as Error).message}`);
    }
  }
  if (cluster) {
    cluster.attach(api);
    try {
      await cluster.start();
    } catch (e) {
      await api.close();
      await manager.close({ keepProxies: true });
      throw new Error(`cannot start the cluster's peer listener on ${config.cluster!.listen.host}:${config.cluster!.listen.port}: ${(e as Error).message}`);
    }
  }
  const publicUrl = (config.publicUrl ?? url).replace(/\/+$/, '');

  let embeddedIssuer: EmbeddedIssuer | undefined;
  let issuer: string;
  let jwksUri: string | undefined;
  try {
    if (config.auth.kind === 'auth0') {
      issuer = config.auth.issuer;
      jwksUri = config.auth.jwksUri;
    } else {
      embeddedIssuer = await startEmbeddedIssuer({
        port: config.auth.issuerPort,
        host: '127.0.0.1',
        audience: config.auth.audience,
        webRedirectUris: [`${publicUrl}/app/`, ...(extras.webRedirectUris ?? [])],
        webOrigins: [new URL(publicUrl).origin],
        ...(extras.accessTokenTtlSec ? { accessTokenTtlSec: extras.accessTokenTtlSec } : {}),
      });
      issuer = embeddedIssuer.issuer;
      jwksUri = embeddedIssuer.jwksUri;
      log.warn('no AUTH0_DOMAIN configured: using the embedded sign-in issuer (user name only, for local use)', { issuer });
    }
  } catch (e) {
    await cluster?.close();
    await api.close();
    await manager.close({ keepProxies: true });
    throw e;
  }
  authenticator = new JwtAuthenticator(new JwtVerifier({ issuer, audience: config.auth.audience, ...(jwksUri ? { jwksUri } : {}) }));
  clientConfig = {
    issuer,
    audience: config.auth.audience,
    desktopClientId: embeddedIssuer ? embeddedIssuer.desktopClientId : config.desktopClientId,
    ...(embeddedIssuer ? { webClientId: embeddedIssuer.webClientId } : config.webClientId ? { webClientId: config.webClientId } : {}),
  };
  const webRoot = extras.webRoot ?? config.webRoot;
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the web root from the server's configuration
  if (webRoot && existsSync(join(webRoot, 'index.html'))) {
    api.fallback = staticSite({ root: webRoot, issuerOrigin: new URL(issuer).origin });
  } else if (webRoot) {
    log.info('no web client to serve (build it with scripts/build-web.ts)', { webRoot });
  }
  log.info('cloud server listening', { url, ...(edgeUrl ? { edgeUrl } : {}), runtime: runtime.kind, issuer, ...(cluster ? { clusterSelf: cluster.self ?? 'unknown', clusterMembers: cluster.members.length } : {}) });

  return {
    url,
    ...(edgeUrl ? { edgeUrl } : {}),
    issuer,
    audience: config.auth.audience,
    ...(embeddedIssuer ? { embeddedIssuer } : {}),
    runtime,
    manager,
    api,
    metrics,
    ...(cluster ? { cluster } : {}),
    async close() {
      await cluster?.close();
      await api.close();
      await manager.close({ keepProxies: config.keepProxiesOnExit });
      await embeddedIssuer?.close();
    },
  };
}
