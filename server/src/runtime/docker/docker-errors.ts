/**
 * Reading dockerode's errors. It rejects with an Error carrying the HTTP status (`statusCode`)
 * and the engine's JSON body (`json.message`); its own `message` is a generic prefix plus that
 * body. These helpers let callers ignore the expected statuses (404 gone, 304 already stopped,
 * 409 already being removed) and show people the engine's own words.
 */

export function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The engine's message if it sent one, else the error's. */
export function engineMessage(error: unknown): string {
  const json = (error as { json?: unknown } | null)?.json;
  if (json && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message;
  }
  if (error instanceof Error) return error.message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
  return String(error);
}

/** Runs `op`, treating the listed HTTP statuses as success (for idempotent cleanup). */
export async function ignoring<T>(statuses: readonly number[], op: () => Promise<T>): Promise<T | undefined> {
  try {
    return await op();
  } catch (e) {
    const status = statusOf(e);
    if (status !== undefined && statuses.includes(status)) return undefined;
    throw e;
  }
}
