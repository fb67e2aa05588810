/**
 * The local configuration directory that the keys CLI, the bridge CLI, start:headless and the
 * desktop share: `CTLL_CONFIG_DIR` when set, else the desktop app's user data directory (where
 * Electron's app.getPath('userData') puts it for the product name CloudToLocalLLM).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const CONFIG_DIR_VARIABLE = 'CTLL_CONFIG_DIR';
const PRODUCT = 'CloudToLocalLLM';

/** Pure: the caller passes its environment (no process.env read here). */
export function configDir(env: Readonly<Record<string, string | undefined>>, platform: NodeJS.Platform = process.platform, home = homedir()): string {
  const set = env[CONFIG_DIR_VARIABLE];
  if (set) return resolve(set);
  if (platform === 'win32') return join(env['APPDATA'] ?? join(home, 'AppData', 'Roaming'), PRODUCT);
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', PRODUCT);
  return join(env['XDG_CONFIG_HOME'] || join(home, '.config'), PRODUCT);
}
