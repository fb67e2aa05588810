/**
 * The desktop app's settings: one typed object with defaults, validated field by field so the
 * Settings window can say what is wrong next to the field that is wrong. No Electron here.
 */
import { MANAGEMENT_ENDPOINTS, type ManagementEndpoint } from '@cloudtolocalllm/bridge/ingress/ollama-routes';
import { DEFAULT_OLLAMA_URL } from '@cloudtolocalllm/bridge/forward/ollama-target';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Settings {
  /** The cloud server, e.g. https://cloud.example.com. Empty: run the local stack on this machine. */
  cloudServerUrl: string;
  /** The local Ollama the bridge serves. */
  ollamaUrl: string;
  startAtLogin: boolean;
  /** Tray only at start (the default); off: the status window opens at start. */
  startMinimized: boolean;
  /** Model management endpoints the cloud may use (none by default). */
  allowManagement: ManagementEndpoint[];
  logLevel: LogLevel;
}

export const DEFAULT_SETTINGS: Settings = {
  cloudServerUrl: '',
  ollamaUrl: DEFAULT_OLLAMA_URL,
  startAtLogin: false,
  startMinimized: true,
  allowManagement: [],
  logLevel: 'info',
};

export type SettingsErrors = Partial<Record<keyof Settings, string>>;
export type SettingsValidation = { ok: true; settings: Settings } | { ok: false; errors: SettingsErrors };

function checkUrl(value: unknown, what: string, options: { allowEmpty: boolean; requireHttpsUnlessLocal: boolean }): string | undefined {
  if (typeof value !== 'string') return `${what} must be text`;
  const text = value.trim();
  if (!text) return options.allowEmpty ? undefined : `${what} is required`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `${what} is not a URL; write it like ${options.requireHttpsUnlessLocal ? 'https://cloud.example.com' : DEFAULT_OLLAMA_URL}`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${what} must start with http:// or https://`;
  if (url.username || url.password) return `${what} must not contain a user name or password`;
  if (url.search || url.hash) return `${what} must not have a query or a fragment`;
  const local = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (options.requireHttpsUnlessLocal && url.protocol !== 'https:' && !local) {
    return `${what} must use https:// (your sign-in token travels to it); http:// is only allowed for this computer`;
  }
  if (!options.requireHttpsUnlessLocal && url.pathname !== '/' && url.pathname !== '') return `${what} must be just scheme, host and port, with no path`;
  return undefined;
}

/** Validates a complete settings object, as the Settings window sends it. */
export function validateSettings(input: unknown): SettingsValidation {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { ok: false, errors: { cloudServerUrl: 'settings must be an object' } };
  const raw = input as Record<string, unknown>;
  const errors: SettingsErrors = {};
  const cloudError = checkUrl(raw['cloudServerUrl'] ?? '', 'The cloud server URL', { allowEmpty: true, requireHttpsUnlessLocal: true });
  if (cloudError) errors.cloudServerUrl = cloudError;
  const ollamaError = checkUrl(raw['ollamaUrl'] ?? '', 'The Ollama URL', { allowEmpty: false, requireHttpsUnlessLocal: false });
  if (ollamaError) errors.ollamaUrl = ollamaError;
  for (const key of ['startAtLogin', 'startMinimized'] as const) {
    if (typeof raw[key] !== 'boolean') errors[key] = `${key} must be true or false`;
  }
  const allow = raw['allowManagement'];
  if (!Array.isArray(allow) || allow.some((e) => !(MANAGEMENT_ENDPOINTS as readonly unknown[]).includes(e))) {
    errors.allowManagement = `choose among ${MANAGEMENT_ENDPOINTS.join(', ')}`;
  }
  if (!(LOG_LEVELS as readonly unknown[]).includes(raw['logLevel'])) errors.logLevel = `the log level must be one of ${LOG_LEVELS.join(', ')}`;
  if (Object.keys(errors).length) return { ok: false, errors };
  const trimSlash = (s: string): string => s.trim().replace(/\/+$/, '');
  return {
    ok: true,
    settings: {
      cloudServerUrl: trimSlash(raw['cloudServerUrl'] as string),
      ollamaUrl: trimSlash(raw['ollamaUrl'] as string),
      startAtLogin: raw['startAtLogin'] as boolean,
      startMinimized: raw['startMinimized'] as boolean,
      allowManagement: [...new Set(allow as ManagementEndpoint[])].sort(),
      logLevel: raw['logLevel'] as LogLevel,
    },
  };
}
