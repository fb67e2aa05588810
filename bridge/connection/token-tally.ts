/**
 * Counts the tokens of one answer as it streams past, for a key's usage: Ollama's final
 * `prompt_eval_count` (in) and `eval_count` (out), or the OpenAI path's `usage` object
 * (`prompt_tokens`, `completion_tokens`; streamed only with stream_options.include_usage).
 * NDJSON, SSE and whole JSON bodies alike: each line is looked at once, only lines that can hold
 * counts are parsed, and no more than one line is held.
 *
 * An answer cut before its counts (the computer left mid-stream, the client went away) still
 * used what it streamed: Ollama and its OpenAI API stream one token per chunk, so the chunks
 * seen stand for the tokens out. The prompt's count comes only at the end: a cut answer has
 * none (tokens in 0).
 *
 * Part of the wire contract: the bridge counts with it for the key-tokens trailer, and the proxy
 * with it for an answer cut before that trailer, so both count alike.
 */
const MAX_LINE = 1 << 20;

export class TokenTally {
  tokensIn = 0;
  tokensOut = 0;
  /** Token chunks seen: an NDJSON line with `"done":false`, an SSE chunk with `"finish_reason":null`. */
  private streamed = 0;
  /** Whether the answer's own counts were seen (its last line, or the OpenAI usage event). */
  private counted = false;
  private line = '';
  private overflow = false;

  feed(chunk: Buffer): void {
    let text = chunk.toString('utf8');
    for (;;) {
      const nl = text.indexOf('\n');
      if (nl < 0) break;
      this.take(this.line + text.slice(0, nl));
      this.line = '';
      this.overflow = false;
      text = text.slice(nl + 1);
    }
    if (this.overflow) return;
    this.line += text;
    if (this.line.length > MAX_LINE) {
      // An embedding's vectors: no counts worth holding a megabyte for until the end.
      this.line = '';
      this.overflow = true;
    }
  }

  /** The answer ended: the last line (a whole JSON body has no newline) is looked at too. */
  end(): void {
    if (this.line) this.take(this.line);
    this.line = '';
    if (!this.counted) this.tokensOut = this.streamed;
  }

  private take(raw: string): void {
    const line = raw.startsWith('data:') ? raw.slice(5).trim() : raw.trim();
    if (!line.startsWith('{')) return;
    // Go's and JavaScript's encoders write no spaces: the string test is exact for both servers.
    if (line.includes('"done":false') || line.includes('"finish_reason":null')) this.streamed += 1;
    if (!(line.includes('eval_count') || line.includes('"usage"'))) return;
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
    const usage = json['usage'] as Record<string, unknown> | undefined;
    const tokensIn = num(json['prompt_eval_count']) ?? num(usage?.['prompt_tokens']);
    const tokensOut = num(json['eval_count']) ?? num(usage?.['completion_tokens']);
    if (tokensIn !== undefined || tokensOut !== undefined) this.counted = true;
    this.tokensIn = tokensIn ?? this.tokensIn;
    this.tokensOut = tokensOut ?? this.tokensOut;
  }
}
