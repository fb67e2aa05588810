/** Which icon file shows a tray state on each platform (the files are made by scripts/generate-icons.ts). */
import { join } from 'node:path';
import { trayIconFile } from './icons/tray-icon-file.js';
import type { TrayState } from './ipc-contract.js';

export function trayIconPath(assetsDir: string, platform: NodeJS.Platform, state: TrayState): string {
  return join(assetsDir, ...trayIconFile(platform, state).split('/'));
}
