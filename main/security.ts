/**
 * Electron's security checklist, as small predicates (testable under Node) and one function
 * that applies them to every window's web contents.
 */
import type { WebContents } from 'electron';

/** Only http(s) URLs without credentials go to the system browser; anything else is refused. */
export function isSafeExternalUrl(raw: string): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  return (url.protocol === 'https:' || url.protocol === 'http:') && !url.username && !url.password;
}

/** IPC is answered only for our own pages, loaded from our own files. */
export function isTrustedSenderUrl(frameUrl: string | undefined, rendererDirUrl: string): boolean {
  if (!frameUrl) return false;
  try {
    const url = new URL(frameUrl);
    return url.protocol === 'file:' && url.href.startsWith(rendererDirUrl) && !url.href.slice(rendererDirUrl.length).includes('..');
  } catch {
    return false;
  }
}

/** Denies navigation and new windows; external links open in the system browser if safe. */
export function hardenWebContents(contents: WebContents, openExternal: (url: string) => void): void {
  contents.setWindowOpenHandler(({ url }) => {
    if (isSafeExternalUrl(url)) openExternal(url);
    return { action: 'deny' };
  });
  contents.on('will-navigate', (event) => event.preventDefault());
  contents.on('will-redirect', (event) => event.preventDefault());
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.session.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
}
