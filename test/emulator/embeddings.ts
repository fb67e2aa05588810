// Deterministic embedding vectors: the same model and text always give the same unit-length
// vector, different texts give different ones, so tests can compare results across a relay.

import { createHash } from 'node:crypto';

export function embedVector(model: string, text: string, dimensions: number): number[] {
  const values: number[] = [];
  for (let block = 0; values.length < dimensions; block++) {
    const hash = createHash('sha256').update(`${model}\n${block}\n${text}`).digest();
    for (let i = 0; i + 1 < hash.length && values.length < dimensions; i += 2) {
      values.push(hash.readUInt16BE(i) / 32767.5 - 1);
    }
  }
  const norm = Math.sqrt(values.reduce((sum, v) => sum + v * v, 0)) || 1;
  // float32 precision, like Ollama's []float32.
  return values.map((v) => Number(Math.fround(v / norm).toPrecision(8)));
}

/** OpenAI's encoding_format "base64": little-endian float32 bytes. */
export function vectorToBase64(vector: readonly number[]): string {
  const buffer = Buffer.alloc(vector.length * 4);
  vector.forEach((v, i) => buffer.writeFloatLE(v, i * 4));
  return buffer.toString('base64');
}
