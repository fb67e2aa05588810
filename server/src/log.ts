/**
 * Structured logs: one JSON object per line on stderr. Callers pass fields, never request or
 * response bodies and never credentials: the cloud keeps no user data, not even in its logs.
 */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LOG_LEVELS)[number];
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * LOG_LEVEL from the environment a program's configuration module was given (config.ts,
 * proxy/proxy-config.ts, the firewall CLI). Throws with the variable's name when it is wrong.
 */
export function logLevelFromEnv(env: NodeJS.ProcessEnv): Level {
  const raw = env['LOG_LEVEL']?.trim();
  if (!raw) return 'info';
  const level = LOG_LEVELS.find((l) => l === raw.toLowerCase());
  if (!level) throw new Error(`LOG_LEVEL="${raw}" must be one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  base: Record<string, unknown> = {},
  level: Level = 'info',
  write: (line: string) => void = (line) => process.stderr.write(line + '\n'),
): Logger {
  const min = ORDER[level];
  if (min === undefined) throw new Error(`unknown log level "${String(level)}"; use ${LOG_LEVELS.join(', ')}`);
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields }));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...base, ...fields }, level, write),
  };
}

/** For tests and embedding: drops everything. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
