/**
 * The cloud server as the page uses it (same origin): the proxy API and the Ollama API behind
 * /ollama, with the access token as a Bearer header. A refused token is renewed once and the call
 * sent again; failures become an ApiProblem whose kind tells the page what to say.
 */
import { OLLAMA_PREFIX, PROXY_START_PATH, PROXY_STATUS_PATH, type ProxyStatus } from '@cloudtolocalllm/api-contract';
import { SignInRequired, type WebAuth } from './auth.js';

export type ProblemKind =
  /** The token was refused and could not be renewed: sign in again. */
  | 'sign-in'
  /** No bridge: the desktop app is not running, not signed in, or cannot reach the cloud. */
  | 'not-connected'
  | 'rate-limited'
  /** The cloud server or Ollama answered with an error. */
  | 'failed'
  /** No answer at all: this device is offline or the server is down. */
  | 'network';

export class ApiProblem extends Error {
  override name = 'ApiProblem';
  constructor(
    readonly kind: ProblemKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export type { ProxyStatus } from '@cloudtolocalllm/api-contract';

export interface ModelInfo {
  name: string;
  parameterSize?: string;
}

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

export const NOT_CONNECTED_MESSAGE =
  'Your computer is not connected. Open CloudToLocalLLM on your computer and sign in with the same account, then try again.';

function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === 'AbortError';
}

async function errorText(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as unknown;
    if (typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string') {
      return (body as { error: string }).error;
    }
  } catch {
    // not JSON
  }
  return text.trim().slice(0, 200) || res.statusText || `HTTP ${res.status}`;
}

function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const first = trimmed[0]!.toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

async function problemFrom(res: Response, path: string): Promise<ApiProblem> {
  const detail = await errorText(res);
  const ollama = path.startsWith(`${OLLAMA_PREFIX}/`);
  if (res.status === 503 && ollama && !/sign-in cannot be checked/i.test(detail)) {
    return new ApiProblem('not-connected', NOT_CONNECTED_MESSAGE, 503);
  }
  if (res.status === 429) {
    const wait = Number(res.headers.get('retry-after'));
    const after = Number.isFinite(wait) && wait > 0 ? ` Try again in ${wait} s.` : '';
    return new ApiProblem('rate-limited', `Too many requests: ${detail}.${after}`, 429);
  }
  if (res.status === 403 && ollama) {
    return new ApiProblem('failed', `Your computer refused this request: ${sentence(detail)}`, 403);
  }
  return new ApiProblem('failed', sentence(detail), res.status);
}

export class CloudApi {
  constructor(private readonly auth: WebAuth) {}

  /** Sends a request with the token; on 401 renews the token once and sends it again. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const send = async (token: string): Promise<Response> => {
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${token}`);
      try {
        return await fetch(path, { ...init, headers, cache: 'no-store', credentials: 'omit' });
      } catch (err) {
        if (isAbort(err)) throw err;
        throw new ApiProblem('network', 'The cloud server cannot be reached. Check this device\'s connection and try again.');
      }
    };
    const token = await this.token(() => this.auth.accessToken());
    let res = await send(token);
    if (res.status === 401) {
      await res.body?.cancel().catch(() => undefined);
      res = await send(await this.token(() => this.auth.refresh()));
      if (res.status === 401) {
        await res.body?.cancel().catch(() => undefined);
        this.auth.forget();
        throw new ApiProblem('sign-in', 'Your sign-in was refused. Sign in again.', 401);
      }
    }
    if (!res.ok) throw await problemFrom(res, path);
    return res;
  }

  private async token(get: () => Promise<string>): Promise<string> {
    try {
      return await get();
    } catch (err) {
      if (err instanceof SignInRequired) throw new ApiProblem('sign-in', sentence(`${err.message} Sign in again`), 401);
      throw new ApiProblem('network', 'The sign-in service cannot be reached. Try again in a moment.');
    }
  }

  private async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.request(path, init);
    try {
      return (await res.json()) as T;
    } catch {
      throw new ApiProblem('failed', `The answer of ${path} is not JSON.`, res.status);
    }
  }

  proxyStatus(): Promise<ProxyStatus> {
    return this.json<ProxyStatus>(PROXY_STATUS_PATH);
  }

  startProxy(): Promise<ProxyStatus> {
    return this.json<ProxyStatus>(PROXY_START_PATH, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  }

  async models(): Promise<ModelInfo[]> {
    const body = await this.json<{ models?: Array<{ name?: unknown; details?: { parameter_size?: unknown } }> }>(`${OLLAMA_PREFIX}/api/tags`);
    const models: ModelInfo[] = [];
    for (const m of body.models ?? []) {
      if (typeof m.name !== 'string') continue;
      const size = m.details?.parameter_size;
      models.push({ name: m.name, ...(typeof size === 'string' && size ? { parameterSize: size } : {}) });
    }
    return models;
  }

  /** Starts a streaming chat; the caller reads the NDJSON body. */
  chat(model: string, messages: ChatMessage[], signal: AbortSignal): Promise<Response> {
    return this.request(`${OLLAMA_PREFIX}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages, stream: true }),
      signal,
    });
  }
}

export { isAbort };
