/**
 * The Settings window's "Test" button: asks the Ollama at a URL for its version and its models,
 * and says exactly what is wrong when it cannot (not a URL, refused, not Ollama, 403, timeout).
 */
import axios, { type AxiosResponse } from 'axios';
import { parseOllamaUrl } from '@cloudtolocalllm/bridge/forward/ollama-target';
import type { OllamaTestResult } from './ipc-contract.js';

function describe(e: unknown, origin: string): string {
  const code = (e as { code?: string }).code;
  switch (code) {
    case 'ECONNREFUSED':
      return `nothing answers at ${origin} (connection refused): is Ollama running?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host of ${origin} cannot be found`;
    case 'ECONNABORTED':
    case 'ETIMEDOUT':
      return `${origin} did not answer in time`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${origin} cannot be reached (${code})`;
    default:
      return `${origin} cannot be reached: ${code ?? (e as Error).message}`;
  }
}

function refusal(res: AxiosResponse, origin: string, path: string): string {
  if (res.status === 403) return `${origin} answered 403 Forbidden: Ollama refuses this Host or Origin (check OLLAMA_HOST / OLLAMA_ORIGINS)`;
  if (res.status === 404) return `${origin} answered 404 for ${path}: this does not look like Ollama`;
  return `${origin} answered HTTP ${res.status} for ${path}`;
}

export async function testOllama(rawUrl: string, timeoutMs = 5_000): Promise<OllamaTestResult> {
  let origin: string;
  try {
    origin = parseOllamaUrl(rawUrl.trim()).url.origin;
  } catch (e) {
    return { ok: false, error: (e as Error).message, url: rawUrl };
  }
  const http = axios.create({ baseURL: origin, timeout: timeoutMs, validateStatus: () => true, proxy: false, maxRedirects: 0, responseType: 'json' });
  try {
    const version = await http.get('/api/version');
    if (version.status !== 200) return { ok: false, error: refusal(version, origin, '/api/version'), url: origin };
    const v = (version.data as { version?: unknown } | undefined)?.version;
    if (typeof v !== 'string') return { ok: false, error: `${origin} answered, but not like Ollama does (no version in /api/version)`, url: origin };
    const tags = await http.get('/api/tags');
    if (tags.status !== 200) return { ok: false, error: refusal(tags, origin, '/api/tags'), url: origin };
    const models = (tags.data as { models?: unknown } | undefined)?.models;
    if (!Array.isArray(models)) return { ok: false, error: `${origin} answered /api/tags without a model list`, url: origin };
    return { ok: true, version: v, modelCount: models.length, url: origin };
  } catch (e) {
    return { ok: false, error: describe(e, origin), url: origin };
  }
}
