/**
 * The Settings window's "Test" button: the bridge's Ollama probe, with the model count, for the
 * URL typed in the form (checked as the bridge will check it).
 */
import { probeOllama } from '@cloudtolocalllm/bridge/forward/ollama-probe';
import { parseOllamaUrl, type OllamaTarget } from '@cloudtolocalllm/bridge/forward/ollama-target';
import type { OllamaTestResult } from './ipc-contract.js';

export async function testOllama(rawUrl: string, timeoutMs = 5_000): Promise<OllamaTestResult> {
  let target: OllamaTarget;
  try {
    target = parseOllamaUrl(rawUrl.trim());
  } catch (e) {
    return { ok: false, error: (e as Error).message, url: rawUrl };
  }
  const url = target.url.origin;
  const result = await probeOllama(target, { timeoutMs, countModels: true });
  return result.ok ? { ok: true, version: result.version, modelCount: result.modelCount ?? 0, url } : { ...result, url };
}
