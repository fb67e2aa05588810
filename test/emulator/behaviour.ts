// The knobs a test turns to make the emulated Ollama slow, fast, long-winded or broken.
// Kept apart from the server so a test can reason about defaults without reading HTTP code.

export interface EmulatorBehaviour {
  /** Delay between generated token lines/chunks, in ms (default 2). */
  tokenIntervalMs: number;
  /** Delay before the response headers of generate/chat/pull and /v1 completions, in ms: the model load (default 0). */
  firstByteDelayMs: number;
  /** Tokens generated when the request sets no options.num_predict (native) or max_tokens (/v1) (default 8). */
  defaultTokens: number;
  /**
   * When set, a generation produces exactly this many tokens and then fails: a streaming answer gets a
   * final `{"error":"..."}` line (or SSE error event on /v1) as Ollama does mid-stream; a non-streaming
   * answer, or a stream that fails before its first token, gets 500 `{"error"}`.
   */
  failAfterTokens?: number;
  /** Number of "pulling <digest>" / "pushing <digest>" progress lines in a pull or push (default 5). */
  pullChunks: number;
}

export const DEFAULT_BEHAVIOUR: Readonly<EmulatorBehaviour> = Object.freeze({
  tokenIntervalMs: 2,
  firstByteDelayMs: 0,
  defaultTokens: 8,
  pullChunks: 5,
});

// A typo such as a negative delay would otherwise turn into a silently fast or hung test.
function checkCount(name: string, value: unknown, integer: boolean): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) {
    throw new RangeError(`EmulatorBehaviour.${name} must be a ${integer ? 'non-negative integer' : 'non-negative number'}, got ${String(value)}`);
  }
}

/** Returns base with patch applied; `failAfterTokens: undefined` in the patch clears the failure. */
export function mergeBehaviour(base: Readonly<EmulatorBehaviour>, patch: Partial<EmulatorBehaviour>): EmulatorBehaviour {
  const next: EmulatorBehaviour = { ...base };
  if (patch.tokenIntervalMs !== undefined) next.tokenIntervalMs = patch.tokenIntervalMs;
  if (patch.firstByteDelayMs !== undefined) next.firstByteDelayMs = patch.firstByteDelayMs;
  if (patch.defaultTokens !== undefined) next.defaultTokens = patch.defaultTokens;
  if (patch.pullChunks !== undefined) next.pullChunks = patch.pullChunks;
  if ('failAfterTokens' in patch) {
    if (patch.failAfterTokens === undefined) delete next.failAfterTokens;
    else next.failAfterTokens = patch.failAfterTokens;
  }
  checkCount('tokenIntervalMs', next.tokenIntervalMs, false);
  checkCount('firstByteDelayMs', next.firstByteDelayMs, false);
  checkCount('defaultTokens', next.defaultTokens, true);
  checkCount('pullChunks', next.pullChunks, true);
  if (next.failAfterTokens !== undefined) checkCount('failAfterTokens', next.failAfterTokens, true);
  return next;
}
