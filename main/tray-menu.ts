/**
 * The tray: its menu, tooltip and icon, rebuilt from one StatusView every time it changes.
 * Plain data here (Electron's MenuItemConstructorOptions shape, typed against Electron's own
 * declarations); main.ts turns it into a Menu, so every state's menu is testable under Node.
 */
import type { MenuItemConstructorOptions } from 'electron';
import type { StatusView, TrayState } from './ipc-contract.js';

export const PRODUCT_LINE = 'CloudToLocalLLM - Multi-Tenant Streaming';

/** The actions the menu can trigger; main.ts binds them. */
export interface TrayActions {
  toggleWindow(): void;
  openSettings(): void;
  openAbout(): void;
  signIn(): void;
  signOut(): void;
  openLogs(): void;
}

const STATE_WORDS: Record<TrayState, string> = {
  'signed-out': 'Signed out',
  connecting: 'Connecting',
  connected: 'Connected',
  error: 'Error',
};

/** "CloudToLocalLLM - Multi-Tenant Streaming" and, on the next line, the state. */
export function trayTooltip(status: StatusView): string {
  return `${PRODUCT_LINE}\n${STATE_WORDS[status.trayState]}: ${status.statusLine}`;
}

export function trayMenuTemplate(status: StatusView, windowVisible: boolean, actions: TrayActions): MenuItemConstructorOptions[] {
  const items: MenuItemConstructorOptions[] = [
    // The status line is information, not an action.
    { id: 'status', label: `${STATE_WORDS[status.trayState]}: ${status.statusLine}`, enabled: false },
    { type: 'separator' },
    { id: 'toggle', label: windowVisible ? 'Hide' : 'Show', click: () => actions.toggleWindow() },
    { id: 'settings', label: 'Settings…', click: () => actions.openSettings() },
    { id: 'about', label: 'About', click: () => actions.openAbout() },
    { type: 'separator' },
    status.account.signedIn
      ? { id: 'sign-out', label: `Sign out${status.account.name ? ` (${status.account.name})` : ''}`, click: () => actions.signOut() }
      : { id: 'sign-in', label: 'Sign in…', click: () => actions.signIn() },
    { id: 'logs', label: 'Open logs', click: () => actions.openLogs() },
    { type: 'separator' },
    // A role item: Electron runs app.quit() for it (and would ignore a click).
    { id: 'quit', label: 'Quit', role: 'quit' },
  ];
  return items;
}
