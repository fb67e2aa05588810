/**
 * Is Ollama there? Asks the Ollama at a target for its version (and, for the Settings window's
 * "Test", its model list) and says exactly what is wrong when it cannot: refused, not found,
 * 403 (Ollama refusing the Host or Origin), not Ollama, no answer in time. The bridge's own
 * health check and the desktop's "Test" button are this one probe.
 */
import http from 'node:http';
import https from 'node:https';
import type { OllamaTarget } from './ollama-target.js';

/** The one sentence for "the connection to Ollama failed", by the error's code. */
export function describeConnectError(err: unknown, origin: string): string {
  const where = `Ollama at ${origin}`;
  const code = (err as { code?: unknown } | undefined)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return `${where} refused the connection: is Ollama running on your computer?`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${where} cannot be found (${code}): check the Ollama URL in CloudToLocalLLM's settings`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} cannot be reached (${code})`;
    default:
      return `${where} cannot be reached: ${typeof code === 'string' ? code : err instanceof Error ? err.message : String(err)}`;
  }
}

/** Codes that mean nothing answers at the target (as opposed to a broken exchange). */
export const UNREACHABLE_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

export type OllamaProbeResult = { ok: true; version: string; modelCount?: number } | { ok: false; error: string };

export interface OllamaProbeOptions {
  /** For the whole probe (default 5 s). */
  timeoutMs?: number;
  /** Also ask /api/tags and count the models. */
  countModels?: boolean;
}

/** Larger answers are refused, not cut: a model list of thousands of models is still far below. */
const MAX_ANSWER_BYTES = 8 << 20;

type Answer = { status: number; body: unknown } | { error: string };

function getJson(target: OllamaTarget, path: string, signal: AbortSignal): Promise<Answer> {
  const origin = target.url.origin;
  return new Promise((resolve) => {
    const req = (target.protocol === 'https:' ? https : http).get(
      // No agent from the environment: the probe goes straight to the URL the user gave.
      { protocol: target.protocol, hostname: target.hostname, port: target.port, path, headers: { host: target.host, accept: 'application/json' }, signal },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            res.destroy();
            resolve({ error: `${origin} answered ${path} with more than ${MAX_ANSWER_BYTES >> 20} MiB` });
          } else chunks.push(chunk);
        });
        res.on('end', () => {
          let body: unknown;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', (e) => resolve({ error: signal.aborted ? `${origin} did not answer in time` : describeConnectError(e, origin) }));
      },
    );
    req.on('error', (e) => resolve({ error: signal.aborted ? `${origin} did not answer in time` : describeConnectError(e, origin) }));
  });
}

function refusal(status: number, origin: string, path: string): string {
  if (status === 403) return `${origin} answered 403 Forbidden: Ollama refuses this Host or Origin (check OLLAMA_HOST / OLLAMA_ORIGINS)`;
  if (status === 404) return `${origin} answered 404 for ${path}: this does not look like Ollama`;
  return `${origin} answered HTTP ${status} for ${path}`;
}

export async function probeOllama(target: OllamaTarget, options: OllamaProbeOptions = {}): Promise<OllamaProbeResult> {
  const origin = target.url.origin;
  const signal = AbortSignal.timeout(options.timeoutMs ?? 5_000);
  const version = await getJson(target, '/api/version', signal);
  if ('error' in version) return { ok: false, error: version.error };
  if (version.status !== 200) return { ok: false, error: refusal(version.status, origin, '/api/version') };
  const v = (version.body as { version?: unknown } | undefined)?.version;
  if (typeof v !== 'string') return { ok: false, error: `${origin} answered, but not like Ollama does (no version in /api/version)` };
  if (!options.countModels) return { ok: true, version: v };
  const tags = await getJson(target, '/api/tags', signal);
  if ('error' in tags) return { ok: false, error: tags.error };
  if (tags.status !== 200) return { ok: false, error: refusal(tags.status, origin, '/api/tags') };
  const models = (tags.body as { models?: unknown } | undefined)?.models;
  if (!Array.isArray(models)) return { ok: false, error: `${origin} answered /api/tags without a model list` };
  return { ok: true, version: v, modelCount: models.length };
}
