// Generated text is a counter, not prose, so a test at the far end of a relay can tell whether every
// token arrived, once, in order: token i (0-based) is `tok${i} `, the last one included (it keeps
// its trailing space, so the whole text is simply the concatenation).

export function tokenText(index: number): string {
  return `tok${index} `;
}

/** The full text of a generation of `count` tokens, e.g. expectedText(3) === 'tok0 tok1 tok2 '. */
export function expectedText(count: number): string {
  let text = '';
  for (let i = 0; i < count; i++) text += tokenText(i);
  return text;
}

/**
 * How many tokens to generate: the request's limit (options.num_predict or max_tokens) when it is a
 * positive integer, else the emulator's default. Ollama treats num_predict <= 0 as "no limit"; the
 * emulator then falls back to the default rather than generating forever.
 */
export function tokenBudget(requested: unknown, fallback: number): number {
  if (typeof requested === 'number' && Number.isInteger(requested) && requested > 0) return requested;
  return fallback;
}

/** A rough prompt token count (about 4 characters a token), only for the statistics fields. */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Fake token ids for the deprecated `context` field of /api/generate: prompt ids then generated ids. */
export function contextIds(promptTokens: number, generated: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < promptTokens + generated; i++) ids.push(128000 + i);
  return ids;
}
