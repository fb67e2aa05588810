/**
 * Reads an Ollama streaming answer (application/x-ndjson: one JSON object a line, flushed as each
 * token is produced) from a fetch body, line by line as the bytes arrive.
 */

export class GarbledStream extends Error {
  override name = 'GarbledStream';
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    throw new GarbledStream(`the answer contained a line that is not JSON: ${line.slice(0, 80)}`);
  }
}

/** Yields each JSON line of the body. Cancelling the fetch (AbortSignal) makes it throw an AbortError. */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) yield parseLine(line);
      }
    }
    buffer += decoder.decode();
    finished = true;
    if (buffer.trim()) yield parseLine(buffer.trim());
  } finally {
    // Stopped early (an error line, the consumer broke out): let the connection go.
    if (!finished) reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

export interface ChatChunk {
  token: string;
  done: boolean;
  doneReason?: string;
  error?: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What one line of /api/chat says: a token, the end, or an error Ollama hit mid-stream. */
export function readChatChunk(value: unknown): ChatChunk {
  if (!isRecord(value)) throw new GarbledStream('the answer contained a line that is not a JSON object');
  if (typeof value['error'] === 'string') return { token: '', done: false, error: value['error'] };
  const message = value['message'];
  const token = isRecord(message) && typeof message['content'] === 'string' ? message['content'] : '';
  const chunk: ChatChunk = { token, done: value['done'] === true };
  if (typeof value['done_reason'] === 'string') chunk.doneReason = value['done_reason'];
  return chunk;
}
