/**
 * electron-log for the main process: a rotating file (1 MiB, then `main.old.log`), the level from
 * the settings, and every message redacted before it is written. Electron-only.
 */
import log from 'electron-log/main';
import type { LogLevel } from '../settings/settings.js';
import { redactArgs } from './redact.js';

export function setupLogging(level: LogLevel): typeof log {
  // No log.initialize(): it is for logging from the windows, and it would register a preload
  // that puts window.__electronLog into every page beside the one API the preload gives.
  log.transports.file.maxSize = 1024 * 1024;
  log.transports.file.level = level;
  log.transports.console.level = process.env['NODE_ENV'] === 'development' ? 'debug' : 'warn';
  log.hooks.push((message) => {
    message.data = redactArgs(message.data);
    return message;
  });
  return log;
}

export function setLogLevel(level: LogLevel): void {
  log.transports.file.level = level;
}

export function logFilePath(): string {
  return log.transports.file.getFile().path;
}
