/**
 * Loopback interface redirection (RFC 8252 §7.3): a one-shot HTTP server on 127.0.0.1 and a
 * random port that receives the authorization response the browser is redirected to.
 *
 * It answers the browser itself (a "you can close this window" page, or an error page), settles
 * once, and closes after that, after a timeout, or when aborted. Requests to other paths get 404
 * so a stray favicon fetch does not end the sign-in.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { AuthError } from './auth-error.js';

/** RFC 8252 §8.3: the IP literal, not "localhost", which may resolve elsewhere or to ::1. */
export const LOOPBACK_HOST = '127.0.0.1';
export const DEFAULT_CALLBACK_PATH = '/callback';
export const DEFAULT_REDIRECT_TIMEOUT_MS = 5 * 60 * 1000;

export interface LoopbackRedirectOptions {
  /** Path of the redirect URI. Default '/callback'. */
  path?: string;
  /** How long to wait for the browser. Default 5 minutes. */
  timeoutMs?: number;
  /**
   * The `state` sent in the authorization request. When given, a response carrying another
   * state is answered with an error page and ends the wait with 'state-mismatch'.
   */
  expectedState?: string;
  signal?: AbortSignal;
}

export interface LoopbackRedirect {
  /** http://127.0.0.1:PORT/callback: the redirect_uri to send in the authorization request. */
  redirectUri: string;
  /**
   * The full URL the browser was redirected to (with code, state, iss), once. Rejects with an
   * AuthError: 'timeout', 'cancelled', 'state-mismatch', 'access-denied', 'authorization-error'.
   */
  callback: Promise<URL>;
  /** Stops listening; a wait still pending rejects with 'cancelled'. */
  close(): Promise<void>;
}

const PAGE_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, message: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title></head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(message)}</p>
</main>
</body>
</html>
`;
}

function answer(res: ServerResponse, status: number, title: string, message: string): void {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': PAGE_POLICY,
    'Cache-Control': 'no-store',
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    Connection: 'close',
  });
  res.end(page(title, message));
}

type Outcome = { ok: true; url: URL } | { ok: false; error: AuthError };

/** What an authorization response on the redirect URI means (RFC 6749 §4.1.2, §4.1.2.1). */
function readAuthorizationResponse(url: URL, expectedState: string | undefined): Outcome {
  const params = url.searchParams;
  if (expectedState !== undefined && params.get('state') !== expectedState) {
    return {
      ok: false,
      error: new AuthError(
        'state-mismatch',
        'The sign-in response does not belong to this sign-in attempt (state mismatch). Start the sign-in again.',
      ),
    };
  }
  const error = params.get('error');
  if (error !== null) {
    const description = params.get('error_description');
    const message = description ? `${error}: ${description}` : error;
    return {
      ok: false,
      error: new AuthError(
        error === 'access_denied' ? 'access-denied' : 'authorization-error',
        `The issuer refused the sign-in (${message}).`,
        { oauthError: error },
      ),
    };
  }
  if (!params.get('code')) {
    return {
      ok: false,
      error: new AuthError('authorization-error', 'The sign-in response has neither a code nor an error.'),
    };
  }
  return { ok: true, url };
}

export async function startLoopbackRedirect(options: LoopbackRedirectOptions = {}): Promise<LoopbackRedirect> {
  const path = options.path ?? DEFAULT_CALLBACK_PATH;
  const timeoutMs = options.timeoutMs ?? DEFAULT_REDIRECT_TIMEOUT_MS;
  if (!path.startsWith('/')) throw new TypeError(`path must start with "/", got ${JSON.stringify(path)}`);
  if (options.signal?.aborted) throw new AuthError('cancelled', 'The sign-in was cancelled.');

  let settle!: (outcome: Outcome) => void;
  const callback = new Promise<URL>((resolve, reject) => {
    settle = (outcome) => (outcome.ok ? resolve(outcome.url) : reject(outcome.error));
  });
  // A rejection nobody awaits yet (timeout before the caller gets to it) must not crash the app.
  callback.catch(() => {});
  let settled = false;

  let redirectUri = '';
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', redirectUri);
    if (url.pathname !== path) {
      answer(res, 404, 'Not found', 'This address only receives the sign-in response.');
      return;
    }
    // Only the browser's redirect (a GET) may settle the sign-in; a HEAD probe must not.
    if (req.method !== 'GET') {
      res.setHeader('Allow', 'GET');
      answer(res, 405, 'Method not allowed', 'The sign-in response arrives as a GET request.');
      return;
    }
    if (settled) {
      answer(res, 410, 'Sign-in already finished', 'This sign-in attempt has already ended. You can close this window.');
      return;
    }
    const outcome = readAuthorizationResponse(url, options.expectedState);
    if (outcome.ok) {
      answer(res, 200, 'Signed in', 'You can close this window and return to CloudToLocalLLM.');
    } else {
      answer(res, 400, 'Sign-in failed', `${outcome.error.message} You can close this window.`);
    }
    res.once('finish', () => finish(outcome));
  });

  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', (err) => reject(new AuthError('loopback-unavailable', `Cannot listen on ${LOOPBACK_HOST}: ${err.message}`, { cause: err })));
    server.listen(0, LOOPBACK_HOST, () => resolve(server.address() as AddressInfo));
  });
  redirectUri = `http://${LOOPBACK_HOST}:${address.port}${path}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };

  function finish(outcome: Outcome): void {
    if (settled) return;
    settled = true;
    settle(outcome);
    void close();
  }

  const timer = setTimeout(() => {
    finish({
      ok: false,
      error: new AuthError('timeout', `No sign-in response arrived within ${Math.round(timeoutMs / 1000)} s. Start the sign-in again.`),
    });
  }, timeoutMs);
  const onAbort = (): void => finish({ ok: false, error: new AuthError('cancelled', 'The sign-in was cancelled.') });
  options.signal?.addEventListener('abort', onAbort, { once: true });

  return {
    redirectUri,
    callback,
    close: () => {
      finish({ ok: false, error: new AuthError('cancelled', 'The sign-in was cancelled.') });
      return close();
    },
  };
}
