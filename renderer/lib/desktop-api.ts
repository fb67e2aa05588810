/** The preload's `window.ctll`, typed by the contract. */
import type { DesktopApi } from '../../main/ipc-contract.js';

export function desktopApi(): DesktopApi {
  const api = (window as unknown as { ctll?: DesktopApi }).ctll;
  if (!api) throw new Error('window.ctll is missing: this page must be opened by CloudToLocalLLM (the preload script provides it)');
  return api;
}

/** Shows an error that escaped every handler, instead of leaving a silently half-working window. */
export function reportFatal(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const box = document.getElementById('fatal');
  if (box) {
    box.textContent = message;
    box.hidden = false;
  }
  console.error(error);
}
