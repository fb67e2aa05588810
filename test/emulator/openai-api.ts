// Handlers for the OpenAI-compatible endpoints under /v1. They share the generation loop with the
// native API; only the request fields and the wire shapes differ.

import { BadRequest, sendJson, type Exchange } from './exchange.js';
import { runGeneration, type WireFormat } from './generation.js';
import { isObject, objectField, readJsonObject, stringField, wantsStream, type JsonObject } from './json-body.js';
import type { ModelEntry } from './models.js';
import { embedVectors } from './native-api.js';
import {
  chatChunk, chatCompletion, chatUsageChunk, completion, completionChunk, completionId, embeddingList,
  modelList, modelObject, openaiError, sse, SSE_DONE, unixSeconds, usage,
} from './openai-compat.js';
import { estimateTokens, tokenBudget, tokenText } from './tokens.js';

const SSE_TYPE = 'text/event-stream';

/** /v1 errors are answered with "application/json" and a trailing newline (json.Encoder). */
export function sendOpenAIError(x: Exchange, status: number, message: string): void {
  sendJson(x, status, openaiError(status, message), 'application/json', true);
}

function sendOpenAI(x: Exchange, value: unknown): void {
  sendJson(x, 200, value, 'application/json', true);
}

function completionModel(x: Exchange, body: JsonObject): { name: string; entry: ModelEntry } {
  const name = stringField(body, 'model');
  if (!name) throw new BadRequest('model is required');
  const entry = x.models.get(name);
  if (!entry) throw new BadRequest(`model "${name}" not found, try pulling it first`, 404);
  return { name, entry };
}

/** max_tokens as Ollama maps it to num_predict (max_completion_tokens accepted too). */
function maxTokens(x: Exchange, body: JsonObject): number {
  return tokenBudget(body['max_tokens'] ?? body['max_completion_tokens'], x.behaviour.defaultTokens);
}

function includeUsage(body: JsonObject): boolean {
  return objectField(body, 'stream_options')?.['include_usage'] === true;
}

/** Text of the messages; content is a string or an array of {type:"text"|"image_url"} parts. */
function messagesText(body: JsonObject): string {
  const messages = body['messages'];
  if (!Array.isArray(messages) || messages.length === 0) throw new BadRequest("[] is too short - 'messages'");
  let text = '';
  for (const m of messages) {
    if (!isObject(m)) throw new BadRequest('invalid message format');
    const content = m['content'];
    if (typeof content === 'string') text += content;
    else if (Array.isArray(content)) {
      for (const part of content) {
        if (!isObject(part) || (part['type'] !== 'text' && part['type'] !== 'image_url')) throw new BadRequest('invalid message format');
        if (part['type'] === 'text') text += typeof part['text'] === 'string' ? part['text'] : '';
      }
    } else if (m['tool_calls'] === undefined) {
      throw new BadRequest(`invalid message content type: ${content === null || content === undefined ? '<nil>' : typeof content}`);
    }
  }
  return text;
}

export async function chatCompletions(x: Exchange): Promise<void> {
  const body = await readJsonObject(x, 'EOF');
  const text = messagesText(body);
  const { name, entry } = completionModel(x, body);
  if (!entry.capabilities.includes('completion')) throw new BadRequest(`"${name}" does not support chat`);
  x.models.touch(entry, undefined);
  const id = completionId('chatcmpl');
  const created = unixSeconds();
  const withUsage = includeUsage(body);
  const format: WireFormat = {
    streamContentType: SSE_TYPE,
    token: (i) => sse(chatChunk(id, name, created, tokenText(i), null)),
    done: (s) => [
      sse(chatChunk(id, name, created, '', 'stop')),
      ...(withUsage ? [sse(chatUsageChunk(id, name, created, usage(s.promptTokens, s.evalCount)))] : []),
      SSE_DONE,
    ],
    // Ollama itself would emit an empty chunk here; an OpenAI-style error event makes clients throw.
    midStreamError: (message) => sse(openaiError(500, message)),
    sendWhole: (y, t, s) => sendOpenAI(y, chatCompletion(id, name, created, t, usage(s.promptTokens, s.evalCount))),
    sendError: sendOpenAIError,
  };
  await runGeneration(x, format, { tokens: maxTokens(x, body), stream: wantsStream(body, false), promptTokens: estimateTokens(text) });
}

export async function completions(x: Exchange): Promise<void> {
  const body = await readJsonObject(x, 'EOF');
  const prompt = stringField(body, 'prompt') ?? '';
  const { name, entry } = completionModel(x, body);
  if (!entry.capabilities.includes('completion')) throw new BadRequest(`"${name}" does not support generate`);
  x.models.touch(entry, undefined);
  const id = completionId('cmpl');
  const created = unixSeconds();
  const withUsage = includeUsage(body);
  const zero = withUsage ? usage(0, 0) : undefined;
  const format: WireFormat = {
    streamContentType: SSE_TYPE,
    token: (i) => sse(completionChunk(id, name, created, tokenText(i), null, zero)),
    done: (s) => [
      sse(completionChunk(id, name, created, '', 'stop', zero)),
      ...(withUsage ? [sse({ ...completionChunk(id, name, created, '', null, usage(s.promptTokens, s.evalCount)), choices: [] })] : []),
      SSE_DONE,
    ],
    midStreamError: (message) => sse(openaiError(500, message)),
    sendWhole: (y, t, s) => sendOpenAI(y, completion(id, name, created, t, usage(s.promptTokens, s.evalCount))),
    sendError: sendOpenAIError,
  };
  await runGeneration(x, format, { tokens: maxTokens(x, body), stream: wantsStream(body, false), promptTokens: estimateTokens(prompt) });
}

export async function embeddings(x: Exchange): Promise<void> {
  const body = await readJsonObject(x, 'EOF');
  const encoding = stringField(body, 'encoding_format') ?? '';
  if (encoding !== '' && !/^(float|base64)$/i.test(encoding)) {
    throw new BadRequest(`Invalid value for 'encoding_format' = ${encoding}. Supported values: ['float', 'base64'].`);
  }
  let input = body['input'];
  if (input === '') input = [''];
  if (input === undefined || input === null || (Array.isArray(input) && input.length === 0)) throw new BadRequest('invalid input');
  const inputs = typeof input === 'string' ? [input] : Array.isArray(input) && input.every((i) => typeof i === 'string') ? (input as string[]) : undefined;
  if (!inputs) throw new BadRequest('invalid input type');
  const { name, entry } = completionModel(x, body);
  x.models.touch(entry, undefined);
  const vectors = embedVectors(entry, inputs, body['dimensions']);
  const promptTokens = inputs.reduce((n, t) => n + estimateTokens(t), 0);
  sendOpenAI(x, embeddingList(name, vectors, promptTokens, encoding.toLowerCase() === 'base64' ? 'base64' : 'float'));
}

export function listModels(x: Exchange): void {
  sendOpenAI(x, modelList(x.models.list()));
}

export function retrieveModel(x: Exchange): void {
  const id = x.params['model'] ?? '';
  const entry = x.models.get(id);
  if (!entry) throw new BadRequest(`model '${id}' not found`, 404);
  sendOpenAI(x, modelObject(id, entry));
}
