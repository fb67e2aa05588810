/**
 * The optional "keep history in this browser": off by default; when on, the conversation is kept
 * in this browser's localStorage (per user) and nowhere else. Turning it off deletes it.
 */
import type { ChatMessage } from './api.js';

const PREFIX = 'ctll.history.v1:';
const FLAG_PREFIX = 'ctll.keep-history:';
/** Keeps localStorage (about 5 MB) from filling up with one long conversation. */
const MAX_MESSAGES = 200;

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback; // storage disabled (private mode, policy) or full
  }
}

export function isChatMessage(m: unknown): m is ChatMessage {
  if (typeof m !== 'object' || m === null) return false;
  const { role, content } = m as { role?: unknown; content?: unknown };
  return (role === 'user' || role === 'assistant') && typeof content === 'string';
}

export class BrowserHistory {
  constructor(private readonly user: string) {}

  get enabled(): boolean {
    return safe(() => localStorage.getItem(FLAG_PREFIX + this.user) === '1', false);
  }

  /** Turns keeping on or off; off deletes what was kept. Returns whether it is now on. */
  setEnabled(on: boolean, messages: readonly ChatMessage[]): boolean {
    if (!on) {
      safe(() => {
        localStorage.removeItem(FLAG_PREFIX + this.user);
        localStorage.removeItem(PREFIX + this.user);
      }, undefined);
      return false;
    }
    const ok = safe(() => {
      localStorage.setItem(FLAG_PREFIX + this.user, '1');
      return true;
    }, false);
    if (ok) this.save(messages);
    return ok;
  }

  load(): ChatMessage[] {
    if (!this.enabled) return [];
    return safe(() => {
      const parsed = JSON.parse(localStorage.getItem(PREFIX + this.user) ?? '[]') as unknown;
      if (!Array.isArray(parsed)) return [];
      return parsed.filter(isChatMessage);
    }, []);
  }

  save(messages: readonly ChatMessage[]): void {
    if (!this.enabled) return;
    safe(() => localStorage.setItem(PREFIX + this.user, JSON.stringify(messages.slice(-MAX_MESSAGES))), undefined);
  }
}
