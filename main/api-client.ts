/**
 * The desktop's client of the api-backend's HTTP API (@cloudtolocalllm/api-contract): where to
 * sign in (GET /api/config), and the signed-in user's streaming proxy: ApiClient starts it and
 * waits until it runs (the original client's ensureProxyRunning / checkProxyStatus), retrying
 * with backoff on network failures, 5xx and 429 (waiting at least what Retry-After asks), and
 * never on a refused token or another 4xx.
 */
import { EventEmitter } from 'node:events';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { Backoff, type BackoffOptions } from '@cloudtolocalllm/bridge/supervisor/backoff';
import { CONFIG_PATH, PROXY_START_PATH, PROXY_STATUS_PATH, PROXY_STOP_PATH, type ClientConfig, type ProxyStatus } from '@cloudtolocalllm/api-contract';

/** What GET /api/proxy/status answers: the server's own type (type-only: nothing of server/ ships). */
export type { ProxyStatus };

/** What the desktop needs of a cloud server's GET /api/config: where to sign in, for which API. */
export type CloudClientConfig = Pick<ClientConfig, 'issuer' | 'audience' | 'desktopClientId'>;

export async function fetchClientConfig(serverUrl: string): Promise<CloudClientConfig> {
  let res: Response;
  try {
    res = await fetch(`${serverUrl}${CONFIG_PATH}`, { signal: AbortSignal.timeout(15_000) });
  } catch (e) {
    throw new Error(`the cloud server at ${serverUrl} cannot be reached (${(e as Error).message})`);
  }
  if (!res.ok) throw new Error(`the cloud server at ${serverUrl} answered ${res.status} to /api/config: is this a CloudToLocalLLM server?`);
  const c = (await res.json()) as Partial<CloudClientConfig>;
  if (!c.issuer || !c.audience || !c.desktopClientId) throw new Error(`the cloud server at ${serverUrl} did not say where to sign in`);
  return { issuer: c.issuer, audience: c.audience, desktopClientId: c.desktopClientId };
}

export type ProxyStartState = { state: 'idle' | 'provisioning' | 'running' | 'error'; detail?: string };

export class ApiClientError extends Error {
  constructor(
    readonly code: 'unauthorized' | 'unreachable' | 'refused' | 'timeout' | 'aborted' | 'bad-answer',
    message: string,
    /** A 429 or 5xx answer's Retry-After: the next attempt waits at least this long. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ApiClientError';
  }
}

export interface ApiClientOptions {
  serverUrl: string;
  getToken: () => Promise<string>;
  backoff?: BackoffOptions;
  /** Give up on ensureProxyRunning after this long (default 2 minutes). */
  timeoutMs?: number;
  /** Per HTTP request (default 60 s: a start answers only once the proxy is healthy). */
  requestTimeoutMs?: number;
}

const DEFAULT_RETRY_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 15_000, factor: 2, minMs: 200 };

function retryAfterMs(res: AxiosResponse): number | undefined {
  const v = Number(res.headers['retry-after']);
  return Number.isFinite(v) && v > 0 ? Math.min(v, 60) * 1000 : undefined;
}

function errorText(res: AxiosResponse): string {
  const data = res.data as { error?: unknown } | string | undefined;
  if (data && typeof data === 'object' && typeof data.error === 'string') return data.error;
  return `HTTP ${res.status}`;
}

export class ApiClient extends EventEmitter<{ state: [ProxyStartState] }> {
  private readonly http: AxiosInstance;
  private current: ProxyStartState = { state: 'idle' };

  constructor(private readonly options: ApiClientOptions) {
    super();
    this.http = axios.create({
      baseURL: options.serverUrl.replace(/\/+$/, ''),
      timeout: options.requestTimeoutMs ?? 60_000,
      validateStatus: () => true,
      // Proxies from the environment would see the bearer token; the server URL is explicit.
      proxy: false,
      maxRedirects: 0,
    });
  }

  get state(): ProxyStartState {
    return this.current;
  }

  /** GET /api/proxy/status. */
  async checkProxyStatus(): Promise<ProxyStatus> {
    return this.call('get', PROXY_STATUS_PATH);
  }

  /** POST /api/proxy/stop. */
  async stopProxy(): Promise<ProxyStatus> {
    const s = await this.call('post', PROXY_STOP_PATH);
    this.set({ state: 'idle' });
    return s;
  }

  /**
   * Makes sure the user's proxy runs: POST /api/proxy/start, then GET /api/proxy/status until
   * it says running, retrying transient failures with backoff. Resolves with the running status.
   */
  async ensureProxyRunning(signal?: AbortSignal): Promise<ProxyStatus> {
    const backoff = new Backoff(this.options.backoff ?? DEFAULT_RETRY_BACKOFF);
    const deadline = Date.now() + (this.options.timeoutMs ?? 120_000);
    this.set({ state: 'provisioning', detail: 'starting your proxy' });
    let lastProblem = 'no answer yet';
    let retryAfterMs = 0;
    for (;;) {
      if (signal?.aborted) throw this.fail(new ApiClientError('aborted', 'cancelled'));
      try {
        const started = await this.call('post', PROXY_START_PATH);
        const status = started.status === 'running' ? started : await this.checkProxyStatus();
        if (status.status === 'running') {
          this.set({ state: 'running', detail: status.proxyId ?? undefined });
          return status;
        }
        lastProblem = `the proxy is ${status.status}`;
      } catch (e) {
        const err = e instanceof ApiClientError ? e : new ApiClientError('unreachable', (e as Error).message);
        if (err.code === 'unauthorized' || err.code === 'bad-answer') throw this.fail(err);
        lastProblem = err.message;
        retryAfterMs = err.retryAfterMs ?? 0;
      }
      const delay = Math.max(backoff.next(), retryAfterMs);
      retryAfterMs = 0;
      if (Date.now() + delay > deadline) {
        throw this.fail(new ApiClientError('timeout', `your proxy did not start in time: ${lastProblem}`));
      }
      this.set({ state: 'provisioning', detail: `${lastProblem}; retrying in ${Math.ceil(delay / 1000)} s` });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }

  private async call(method: 'get' | 'post', path: string): Promise<ProxyStatus> {
    const token = await this.options.getToken();
    let res: AxiosResponse;
    try {
      res = await this.http.request({ method, url: path, headers: { authorization: `Bearer ${token}` }, ...(method === 'post' ? { data: {} } : {}) });
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new ApiClientError('unreachable', `the cloud server at ${this.options.serverUrl} cannot be reached (${code ?? (e as Error).message})`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new ApiClientError('unauthorized', `the cloud server refused your sign-in: ${errorText(res)}`);
    }
    if (res.status === 429 || res.status >= 500) {
      const wait = retryAfterMs(res);
      throw new ApiClientError('refused', `the cloud server answered ${res.status}: ${errorText(res)}${wait ? ` (retry after ${wait / 1000} s)` : ''}`, wait);
    }
    if (res.status >= 400) throw new ApiClientError('bad-answer', `the cloud server answered ${res.status}: ${errorText(res)}`);
    const body = res.data as Partial<ProxyStatus> | undefined;
    if (!body || typeof body !== 'object' || typeof body.status !== 'string') {
      throw new ApiClientError('bad-answer', `the cloud server's answer to ${path} is not a proxy status`);
    }
    return body as ProxyStatus;
  }

  private fail(e: ApiClientError): ApiClientError {
    this.set({ state: 'error', detail: e.message });
    return e;
  }

  private set(s: ProxyStartState): void {
    this.current = s.detail === undefined ? { state: s.state } : s;
    this.emit('state', this.current);
  }
}
