// Reading a JSON request body the way Ollama's Go handlers do (ShouldBindJSON): unknown fields are
// ignored, an empty body and a wrongly typed field are 400s, and so is anything that is not JSON.

import { BadRequest, type Exchange } from './exchange.js';

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function goTypeName(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  if (typeof value === 'boolean') return 'bool';
  return typeof value;
}

/** The body as an object, or a BadRequest. `emptyMessage` is "missing request body" on /api, "EOF" on /v1. */
export async function readJsonObject(x: Exchange, emptyMessage = 'missing request body'): Promise<JsonObject> {
  const text = (await x.body()).toString('utf8');
  if (text.trim() === '') throw new BadRequest(emptyMessage);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new BadRequest(/end of (JSON )?input/i.test(detail) ? 'unexpected EOF' : `invalid character in JSON body: ${detail}`);
  }
  if (!isObject(value)) throw new BadRequest(`json: cannot unmarshal ${goTypeName(value)} into Go value of type request`);
  return value;
}

/** A string field, undefined when absent or null; a BadRequest when of another type (Go's unmarshal error). */
export function stringField(body: JsonObject, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new BadRequest(`json: cannot unmarshal ${goTypeName(value)} into Go struct field .${key} of type string`);
  return value;
}

export function objectField(body: JsonObject, key: string): JsonObject | undefined {
  const value = body[key];
  return isObject(value) ? value : undefined;
}

/** Ollama streams unless "stream" is exactly false; the /v1 endpoints stream only when it is true. */
export function wantsStream(body: JsonObject, byDefault: boolean): boolean {
  return byDefault ? body['stream'] !== false : body['stream'] === true;
}
