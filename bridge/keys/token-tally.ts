/**
 * Counts the tokens of one answer as it streams past, for a key's usage: Ollama's final
 * `prompt_eval_count` (in) and `eval_count` (out), or the OpenAI path's `usage` object
 * (`prompt_tokens`, `completion_tokens`; streamed only with stream_options.include_usage).
 * NDJSON, SSE and whole JSON bodies alike: each line is looked at once, only lines that can hold
 * counts are parsed, and no more than one line is held.
 */
const MAX_LINE = 1 << 20;

export class TokenTally {
  tokensIn = 0;
  tokensOut = 0;
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
  }

  private take(raw: string): void {
    const line = raw.startsWith('data:') ? raw.slice(5).trim() : raw.trim();
    if (!line.startsWith('{') || !(line.includes('eval_count') || line.includes('"usage"'))) return;
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
    const usage = json['usage'] as Record<string, unknown> | undefined;
    this.tokensIn = num(json['prompt_eval_count']) ?? num(usage?.['prompt_tokens']) ?? this.tokensIn;
    this.tokensOut = num(json['eval_count']) ?? num(usage?.['completion_tokens']) ?? this.tokensOut;
  }
}
