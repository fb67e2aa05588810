/**
 * The HTML the embedded issuer shows to a person: the user-name sign-in form and its error pages.
 * Every page uses one stylesheet, allowed by its hash, so the Content-Security-Policy can forbid
 * everything else: no scripts, no external resources, no framing.
 */
import { createHash } from 'node:crypto';

/** 1-64 characters of [A-Za-z0-9._@-]: enough for e-mail-like names, nothing to escape in a `sub`. */
export const USER_NAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

export type UserNameCheck = { ok: true; userName: string } | { ok: false; message: string };

export function checkUserName(value: unknown): UserNameCheck {
  if (typeof value !== 'string' || value.trim() === '') {
    return { ok: false, message: 'Enter a user name.' };
  }
  const userName = value.trim();
  if (userName.length > 64) {
    return { ok: false, message: 'The user name is too long: use at most 64 characters.' };
  }
  if (!USER_NAME_PATTERN.test(userName)) {
    return {
      ok: false,
      message: 'The user name may only contain letters, digits, dots, underscores, hyphens and @.',
    };
  }
  return { ok: true, userName };
}

const STYLE = [
  'body{font-family:system-ui,sans-serif;margin:0;padding:2rem 1rem;background:#f4f5f7;color:#1b1f24}',
  'main{max-width:26rem;margin:0 auto;background:#fff;border:1px solid #d0d4da;border-radius:8px;padding:1.5rem}',
  'h1{font-size:1.4rem;margin:0 0 1rem}',
  'label{display:block;font-weight:600;margin:1rem 0 .25rem}',
  'input{box-sizing:border-box;width:100%;font:inherit;padding:.5rem;border:1px solid #6b7280;border-radius:4px}',
  'input[aria-invalid=true]{border-color:#b3261e;border-width:2px}',
  '.hint{font-size:.9rem;color:#4b5563;margin:.25rem 0 0}',
  '.error{color:#b3261e;font-weight:600;border-left:4px solid #b3261e;padding-left:.5rem}',
  '.note{font-size:.9rem;background:#fff8e1;border:1px solid #e0c36a;border-radius:4px;padding:.5rem}',
  '.actions{display:flex;gap:.5rem;margin-top:1.25rem}',
  'button{font:inherit;padding:.5rem 1rem;border-radius:4px;border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer}',
  'button.secondary{background:#fff;color:#1d4ed8}',
  'button:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}',
].join('');

const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;

/**
 * The policy for every HTML page of the issuer. `formTargets` are the origins a form submission
 * may end up at after redirects (browsers apply form-action to the whole redirect chain).
 */
export function contentSecurityPolicy(formTargets: readonly string[]): string {
  return [
    "default-src 'none'",
    `style-src ${STYLE_HASH}`,
    // 'self' serves no script; it only gives oidc-provider's form_post page a list to add its hash to.
    "script-src 'self'",
    `form-action 'self'${formTargets.map((origin) => ` ${origin}`).join('')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

export function escapeHtml(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

export interface LoginPageInput {
  /** Where the form posts to (the interaction's own path, so its cookie is sent). */
  action: string;
  /** Who asks to sign in, shown to the person. */
  clientName: string;
  /** The value to put back into the field after a refused attempt. */
  userName?: string;
  /** Why the previous attempt was refused. */
  error?: string;
}

export function renderLoginPage(input: LoginPageInput): string {
  const invalid = input.error !== undefined;
  const describedBy = invalid ? 'username-error username-hint' : 'username-hint';
  return page(
    invalid ? 'Error: Sign in' : 'Sign in',
    `<h1>Sign in to ${escapeHtml(input.clientName)}</h1>
<p class="note" id="local-issuer-note">This is a local test sign-in: there is no password.
Anyone who can reach this page can sign in under any user name.</p>
${invalid ? `<p class="error" id="username-error" role="alert">${escapeHtml(input.error ?? '')}</p>` : ''}
<form method="post" action="${escapeHtml(input.action)}" novalidate>
<label for="username">User name</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none"
 spellcheck="false" required maxlength="64" pattern="[A-Za-z0-9._@\\-]{1,64}"
 aria-describedby="${describedBy}"${invalid ? ' aria-invalid="true"' : ''}
 value="${escapeHtml(input.userName ?? '')}" autofocus>
<p class="hint" id="username-hint">1 to 64 characters: letters, digits, dots, underscores, hyphens or @.</p>
<div class="actions">
<button type="submit" name="action" value="sign-in">Sign in</button>
<button type="submit" name="action" value="cancel" class="secondary" formnovalidate>Cancel</button>
</div>
</form>`,
  );
}

export function renderMessagePage(title: string, message: string, details: Record<string, string> = {}): string {
  const rows = Object.entries(details)
    .map(([key, value]) => `<dt>${escapeHtml(key)}</dt><dd>${escapeHtml(value)}</dd>`)
    .join('');
  return page(
    title,
    `<h1>${escapeHtml(title)}</h1>
<p role="status">${escapeHtml(message)}</p>
${rows ? `<dl>${rows}</dl>` : ''}`,
  );
}

/** oidc-provider's RP-initiated logout confirmation, without the external font its default loads. */
export function renderLogoutPage(form: string, host: string): string {
  return page(
    'Sign out',
    `<h1>Sign out from ${escapeHtml(host)}?</h1>
${form}
<div class="actions">
<button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button type="submit" form="op.logoutForm" class="secondary">No, stay signed in</button>
</div>`,
  );
}
