/**
 * PKCE sign-in as an HTTP client, no browser needed: the desktop's own flow (`signIn`: discovery,
 * PKCE, state, nonce, loopback redirect, code exchange), but the "browser" is fetch with manual
 * redirects and a cookie jar (tough-cookie, RFC 6265) that fills in the issuer's sign-in form
 * with a user name.
 *
 * Only works against the embedded issuer (server/src/issuer): it knows that issuer's one-field
 * form and nothing else. Against Auth0 or any issuer with a password, MFA or script-driven pages
 * it fails with 'headless-unsupported'. Used by `npm run start:headless`, the bench and tests;
 * never shipped in the desktop app, hence here and not in main/.
 */
import { CookieJar } from 'tough-cookie';
import { AuthError } from '../main/auth/auth-error.js';
import { refresh, signIn, type TokenSet } from '../main/auth/pkce-sign-in.js';

export interface HeadlessSignInOptions {
  /** The embedded issuer, e.g. http://127.0.0.1:PORT. */
  issuer: string;
  clientId: string;
  audience: string;
  /** Typed into the issuer's sign-in form; becomes the token's `sub`. */
  username: string;
  scope?: string;
  /** Default 30 s for the whole flow. */
  timeoutMs?: number;
}

export const DEFAULT_HEADLESS_TIMEOUT_MS = 30_000;
/** More hops than the embedded issuer ever needs (auth -> interaction -> login -> auth -> callback). */
const MAX_HOPS = 10;

function decodeHtml(value: string): string {
  return value
    .replace(/&#(\d+);/g, (_m, code: string) => String.fromCharCode(Number(code)))
    .replaceAll('&quot;', '"')
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

/** The embedded issuer's sign-in form: a form with a `username` field. */
function findLoginForm(html: string): { action: string } | undefined {
  const form = /<form\b[^>]*\baction="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form || !/\bname="username"/.test(form[2] ?? '')) return undefined;
  return { action: decodeHtml(form[1] ?? '') };
}

/** The message the issuer put on the page: its alert, else its first paragraph. */
function pageMessage(html: string): string | undefined {
  const match = /role="alert"[^>]*>([\s\S]*?)</.exec(html) ?? /<p\b[^>]*>([\s\S]*?)<\/p>/.exec(html);
  const text = match?.[1]?.replace(/\s+/g, ' ').trim();
  return text ? decodeHtml(text) : undefined;
}

interface Hop {
  url: URL;
  method: 'GET' | 'POST';
  body?: URLSearchParams;
}

/**
 * Plays the browser: follows the authorization URL through the issuer, submits the user name,
 * and stops once the loopback redirect URI has been requested (the loopback server then holds
 * the authorization response for `signIn`).
 */
async function followAsBrowser(authorizationUrl: string, username: string, signal: AbortSignal): Promise<void> {
  const start = new URL(authorizationUrl);
  const redirectUri = start.searchParams.get('redirect_uri');
  if (!redirectUri) throw new AuthError('headless-unsupported', 'The authorization URL has no redirect_uri.');
  const callbackOrigin = new URL(redirectUri).origin;
  const issuerOrigin = start.origin;
  const jar = new CookieJar();

  let hop: Hop = { url: start, method: 'GET' };
  let submitted = false;
  for (let count = 0; count < MAX_HOPS; count++) {
    if (hop.url.origin !== issuerOrigin && hop.url.origin !== callbackOrigin) {
      throw new AuthError('headless-unsupported', `The issuer sent the sign-in to ${hop.url.origin}, which a headless sign-in cannot follow.`);
    }
    const atIssuer = hop.url.origin === issuerOrigin;
    const headers: Record<string, string> = {};
    const cookie = atIssuer ? await jar.getCookieString(hop.url.href) : '';
    if (cookie) headers['cookie'] = cookie;
    if (hop.body) headers['content-type'] = 'application/x-www-form-urlencoded';

    let response: Response;
    try {
      response = await fetch(hop.url, {
        method: hop.method,
        headers,
        redirect: 'manual',
        signal,
        ...(hop.body ? { body: hop.body } : {}),
      });
    } catch (err) {
      const what = atIssuer ? 'the issuer' : 'the loopback redirect';
      throw new AuthError(signal.aborted ? 'timeout' : 'issuer-unreachable', `Headless sign-in could not reach ${what}: ${err instanceof Error ? err.message : String(err)}.`, { cause: err });
    }
    if (atIssuer) for (const header of response.headers.getSetCookie()) await jar.setCookie(header, hop.url.href, { ignoreError: true });

    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      hop = { url: new URL(location, hop.url), method: 'GET' };
      continue;
    }
    const html = await response.text();
    // The loopback redirect answered: the authorization response is delivered (or refused there).
    if (!atIssuer) return;

    const form = findLoginForm(html);
    if (form && submitted) {
      throw new AuthError('login-rejected', pageMessage(html) ?? 'The issuer refused the user name.');
    }
    if (form) {
      submitted = true;
      hop = { url: new URL(form.action, hop.url), method: 'POST', body: new URLSearchParams({ username, action: 'sign-in' }) };
      continue;
    }
    throw new AuthError(
      'headless-unsupported',
      `The issuer answered ${response.status} without the embedded issuer's sign-in form${pageMessage(html) ? `: ${pageMessage(html)}` : ''}.`,
    );
  }
  throw new AuthError('headless-unsupported', `The sign-in took more than ${MAX_HOPS} redirects.`);
}

/** Signs in to the embedded issuer as `username`, without a browser. Rejects with an AuthError. */
export async function headlessSignIn(options: HeadlessSignInOptions): Promise<TokenSet> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HEADLESS_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  return signIn({
    issuer: options.issuer,
    clientId: options.clientId,
    audience: options.audience,
    ...(options.scope !== undefined ? { scope: options.scope } : {}),
    timeoutMs,
    openBrowser: (url) => followAsBrowser(url, options.username, signal),
  });
}

/**
 * `refresh` for a headless session, naming the issuer and client explicitly (the headless CLI
 * knows them from the embedded issuer it started). Same rotation and errors as `refresh`.
 */
export function refreshHeadless(issuer: { issuer: string; clientId: string }, tokens: TokenSet): Promise<TokenSet> {
  return refresh({ ...tokens, issuer: issuer.issuer, clientId: issuer.clientId });
}
