/**
 * Text the windows show, computed without the DOM so Node tests can check it.
 */
import type { OllamaTestResult, StatusView } from '../../main/ipc-contract.js';

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** 0 → "0 B", 1536 → "1.5 KiB", 10_485_760 → "10 MiB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  // One decimal below 10 units reads well ("1.5 KiB"); above that the decimal is noise ("312 MiB").
  const text = unit === 0 || value >= 10 ? String(Math.round(value)) : (Math.round(value * 10) / 10).toString();
  return `${text} ${BYTE_UNITS[unit]}`;
}

export function formatCount(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

/** 42_000 → "42 s", 125_000 → "2 min", 7_500_000 → "2 h 5 min". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  return `${Math.floor(h / 24)} days`;
}

/** "14:03:07 (for 2 min)", or "—" when not connected. */
export function formatSince(since: number | undefined, now: number): string {
  if (since === undefined || !Number.isFinite(since)) return '—';
  const at = new Date(since);
  const today = new Date(now).toDateString() === at.toDateString();
  const when = today ? at.toLocaleTimeString() : at.toLocaleString();
  return `${when} (for ${formatDuration(now - since)})`;
}

/** What the Test button reports: "Ollama 0.12.3, 3 models", or the error exactly as main sent it. */
export function describeOllamaTest(result: OllamaTestResult): string {
  if (!result.ok) return result.error;
  return `Ollama ${result.version}, ${result.modelCount} ${result.modelCount === 1 ? 'model' : 'models'}`;
}

export function describeBridge(bridge: StatusView['bridge']): string {
  const parts = [bridge.state];
  if (bridge.reason) parts.push(bridge.reason);
  if (bridge.retryInMs !== undefined) parts.push(`retrying in ${formatDuration(bridge.retryInMs)}`);
  return parts.join(' — ');
}

export function describeOllama(ollama: StatusView['ollama']): string {
  const head = ollama.reachable === undefined ? 'Not checked yet' : ollama.reachable ? 'Reachable' : 'Not reachable';
  return ollama.detail ? `${head}: ${ollama.detail}` : head;
}

export function describeAccount(account: StatusView['account']): string {
  if (!account.signedIn) return 'Not signed in';
  const who = account.name ?? 'an unnamed account';
  return account.issuer ? `Signed in as ${who} (${account.issuer})` : `Signed in as ${who}`;
}
