// The paced token loop shared by /api/generate, /api/chat and the /v1 completions. The wire
// format differs per endpoint; the timing, failure and abort rules must not, so they live here once.

import { sendJson, sleep, startStream, writeChunk, type Exchange } from './exchange.js';
import { expectedText } from './tokens.js';

/** Ollama's statistics for a generation; durations in nanoseconds. */
export interface GenerationStats {
  promptTokens: number;
  evalCount: number;
  loadNs: number;
  promptEvalNs: number;
  evalNs: number;
  totalNs: number;
}

export interface WireFormat {
  /** Content-Type of the streamed answer. */
  readonly streamContentType: string;
  /** The wire text of token i: one NDJSON line or one SSE event. */
  token(index: number): string;
  /** What ends a successful stream, one write per element (done line; or usage event and [DONE]). */
  done(stats: GenerationStats): string[];
  /** What ends a stream that fails after some output. */
  midStreamError(message: string): string;
  /** The single answer of a non-streaming request. */
  sendWhole(x: Exchange, text: string, stats: GenerationStats): void;
  /** An error answered with a status, before any output. */
  sendError(x: Exchange, status: number, message: string): void;
}

export interface GenerationRequest {
  tokens: number;
  stream: boolean;
  promptTokens: number;
}

export function failureMessage(tokens: number): string {
  return `an error was encountered while running the model: emulated failure after ${tokens} tokens (failAfterTokens)`;
}

const ns = (from: bigint, to: bigint): number => Math.max(1, Number(to - from));

/**
 * Loads (firstByteDelayMs), then produces tokens tokenIntervalMs apart, the first one at once.
 * With failAfterTokens set, exactly that many tokens come before the failure, whatever the budget.
 * Stops without another write as soon as the caller leaves.
 */
export async function runGeneration(x: Exchange, format: WireFormat, request: GenerationRequest): Promise<void> {
  const { firstByteDelayMs, tokenIntervalMs, failAfterTokens } = x.behaviour;
  const endGeneration = x.beginGeneration();
  try {
    const start = process.hrtime.bigint();
    if (!(await sleep(firstByteDelayMs, x.signal))) return;
    const loaded = process.hrtime.bigint();
    const produce = failAfterTokens ?? request.tokens;

    // Ollama turns an error that comes before any output into a plain status answer.
    if (request.stream && produce === 0 && failAfterTokens !== undefined) {
      format.sendError(x, 500, failureMessage(0));
      return;
    }
    if (request.stream) startStream(x, format.streamContentType);

    let firstToken = loaded;
    for (let i = 0; i < produce; i++) {
      if (i > 0 && !(await sleep(tokenIntervalMs, x.signal))) return;
      if (i === 0) firstToken = process.hrtime.bigint();
      if (request.stream && !(await writeChunk(x, format.token(i)))) return;
      if (x.signal.aborted) return;
      x.noteToken();
    }
    const finished = process.hrtime.bigint();

    if (failAfterTokens !== undefined) {
      const message = failureMessage(failAfterTokens);
      if (!request.stream) {
        format.sendError(x, 500, message);
        return;
      }
      if (await writeChunk(x, format.midStreamError(message))) x.res.end();
      return;
    }

    const stats: GenerationStats = {
      promptTokens: request.promptTokens,
      evalCount: produce,
      loadNs: ns(start, loaded),
      promptEvalNs: ns(loaded, firstToken),
      evalNs: ns(firstToken, finished),
      totalNs: ns(start, finished),
    };
    if (!request.stream) {
      format.sendWhole(x, expectedText(produce), stats);
      return;
    }
    for (const chunk of format.done(stats)) if (!(await writeChunk(x, chunk))) return;
    x.res.end();
  } finally {
    endGeneration();
  }
}

/** Native Ollama errors: `{"error": "..."}`. */
export function sendNativeError(x: Exchange, status: number, message: string): void {
  sendJson(x, status, { error: message });
}
