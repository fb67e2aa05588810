// The shapes of Ollama's OpenAI-compatible layer (openai/openai.go and middleware/openai.go):
// chunk and completion objects, SSE framing, errors and model lists. Pure data, no I/O.

import { vectorToBase64 } from './embeddings.js';
import { modelNamespace, type ModelEntry } from './models.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** Ollama's ids are a prefix and a random number below 999: "chatcmpl-123", "cmpl-45". */
export function completionId(prefix: 'chatcmpl' | 'cmpl'): string {
  return `${prefix}-${Math.floor(Math.random() * 999)}`;
}

export const unixSeconds = (date = new Date()): number => Math.floor(date.getTime() / 1000);

/** One server-sent event carrying JSON. */
export function sse(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

export const SSE_DONE = 'data: [DONE]\n\n';

/** openai.NewError: the error type follows the status. */
export function openaiError(status: number, message: string): { error: { message: string; type: string; param: null; code: null } } {
  const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error';
  return { error: { message, type, param: null, code: null } };
}

export function chatChunk(id: string, model: string, created: number, content: string, finishReason: string | null): object {
  return {
    id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_ollama',
    choices: [{ index: 0, delta: { role: 'assistant', content }, finish_reason: finishReason }],
  };
}

/** The extra chunk sent when stream_options.include_usage is set: no choices, only usage. */
export function chatUsageChunk(id: string, model: string, created: number, u: Usage): object {
  return { id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_ollama', choices: [], usage: u };
}

export function chatCompletion(id: string, model: string, created: number, content: string, u: Usage): object {
  return {
    id, object: 'chat.completion', created, model, system_fingerprint: 'fp_ollama',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: u,
  };
}

export function completionChunk(id: string, model: string, created: number, text: string, finishReason: string | null, u?: Usage): object {
  const chunk: Record<string, unknown> = {
    id, object: 'text_completion', created,
    choices: [{ text, index: 0, finish_reason: finishReason }],
    model, system_fingerprint: 'fp_ollama',
  };
  if (u) chunk['usage'] = u;
  return chunk;
}

export function completion(id: string, model: string, created: number, text: string, u: Usage): object {
  return {
    id, object: 'text_completion', created, model, system_fingerprint: 'fp_ollama',
    choices: [{ text, index: 0, finish_reason: 'stop' }],
    usage: u,
  };
}

export function modelObject(id: string, entry: ModelEntry): object {
  return { id, object: 'model', created: unixSeconds(entry.modifiedAt), owned_by: modelNamespace(id) };
}

export function modelList(entries: readonly ModelEntry[]): object {
  return { object: 'list', data: entries.map((e) => modelObject(e.name, e)) };
}

export function embeddingList(model: string, vectors: readonly number[][], promptTokens: number, encoding: 'float' | 'base64'): object {
  return {
    object: 'list',
    data: vectors.map((v, index) => ({ object: 'embedding', embedding: encoding === 'base64' ? vectorToBase64(v) : v, index })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}
