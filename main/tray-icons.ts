/** Which icon file shows a tray state on each platform (the files are made by scripts/generate-icons.ts). */
import { join } from 'node:path';
import type { TrayState } from './ipc-contract.js';

/**
 * Linux: monochrome 22 px (the size most panels draw; the @2x file serves HiDPI through the
 * file name). macOS: template images the menu bar recolours. Windows: a multi-size .ico.
 */
export function trayIconPath(assetsDir: string, platform: NodeJS.Platform, state: TrayState): string {
  if (platform === 'darwin') return join(assetsDir, 'tray', 'macos', `${state}Template.png`);
  if (platform === 'win32') return join(assetsDir, 'tray', 'windows', `${state}.ico`);
  return join(assetsDir, 'tray', 'linux', `${state}-22.png`);
}
