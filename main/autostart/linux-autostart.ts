/**
 * Start at login on Linux: an XDG autostart entry (freedesktop.org Desktop Application Autostart
 * Specification), `$XDG_CONFIG_HOME/autostart/cloudtolocalllm.desktop`. Electron's
 * setLoginItemSettings does nothing on Linux, so the file is ours to write, and the file's
 * presence (and no `Hidden=true`) is the true current state the Settings window shows.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export const AUTOSTART_FILE_NAME = 'cloudtolocalllm.desktop';

export function autostartDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_CONFIG_HOME'];
  // The spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const base = xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.config');
  return join(base, 'autostart');
}

/** Quotes an argument for the desktop entry Exec key (spec: "The Exec key", reserved characters). */
export function quoteExecArg(arg: string): string {
  const escapedPercent = arg.replace(/%/g, '%%');
  if (arg !== '' && !/[\s"'\\$`<>~|&;*?#()]/.test(arg)) return escapedPercent;
  return `"${escapedPercent.replace(/([\\"$`])/g, '\\$1')}"`;
}

export function desktopEntry(execPath: string, args: readonly string[] = []): string {
  return [
    '[Desktop Entry]',
    'Type=Application',
    'Version=1.0',
    'Name=CloudToLocalLLM',
    'Comment=Use the LLMs on this computer from anywhere',
    `Exec=${[execPath, ...args].map(quoteExecArg).join(' ')}`,
    'Icon=cloudtolocalllm',
    'Terminal=false',
    'Categories=Network;Utility;',
    'X-GNOME-Autostart-enabled=true',
    '',
  ].join('\n');
}

export class LinuxAutostart {
  readonly file: string;

  constructor(dir: string = autostartDir()) {
    this.file = join(dir, AUTOSTART_FILE_NAME);
  }

  /** True when an entry exists and is not disabled (Hidden=true or X-GNOME-Autostart-enabled=false). */
  async isEnabled(): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      return false;
    }
    return !/^Hidden\s*=\s*true\s*$/im.test(text) && !/^X-GNOME-Autostart-enabled\s*=\s*false\s*$/im.test(text);
  }

  /** `--hidden` makes a login start stay in the tray whatever the window setting says. */
  async enable(execPath: string, args: readonly string[] = ['--hidden']): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    await writeFile(this.file, desktopEntry(execPath, args), { mode: 0o644 });
  }

  async disable(): Promise<void> {
    await rm(this.file, { force: true });
  }
}
