/**
 * The shape of a refusal's body, chosen by the request's path, as Ollama itself answers: on its
 * OpenAI-compatible routes (`/v1/...`) OpenAI's `{"error":{"message","type","param","code"}}`,
 * which OpenAI clients read (the `openai` package shows `error.message`); everywhere else
 * Ollama's `{"error":"..."}`. The api-backend (paths under /ollama), the streaming proxy and the
 * bridge all answer through this one function, so a client sees one shape whoever refused.
 */

/** Is `path` (with or without the endpoint's `/ollama` prefix, with or without a query) on the OpenAI-compatible API? */
export function isOpenAiPath(path: string | undefined): boolean {
  if (!path) return false;
  const bare = path.split(/[?#]/, 1)[0] ?? '';
  return /^(?:\/ollama)?\/v1(?:\/|$)/.test(bare);
}

/** Ollama's openai.NewError: the type follows the status. */
export function openAiErrorType(status: number): string {
  return status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error';
}

/**
 * The body of a refusal of a request for `path`. `code` (our stable refusal code, also in the
 * refusal header) goes into OpenAI's `code` field, which Ollama leaves null.
 */
export function errorBody(path: string | undefined, status: number, message: string, code?: string): string {
  if (!isOpenAiPath(path)) return JSON.stringify({ error: message });
  return JSON.stringify({ error: { message, type: openAiErrorType(status), param: null, code: code ?? null } });
}
