/**
 * "Start at login" on each platform, read back from the OS (the Settings window shows the true
 * state, not only our setting):
 *
 * - Windows: a login item (the Run key). Electron matches an entry by executable AND arguments,
 *   so reading it back passes the same `args` it was written with, or it reads as off and can
 *   never be turned off.
 * - macOS: a login item (SMAppService); arguments do not apply there, so a login start is
 *   recognised by `wasOpenedAtLogin` instead of `--hidden`.
 * - Linux: Electron has no login items; an XDG autostart entry (linux-autostart.ts).
 *
 * Run from source, the executable is Electron itself: the app's folder must come first in the
 * arguments or a login start opens Electron's default app instead of this one.
 * Electron-free: main.ts passes in the parts of `app` it needs.
 */
import type { LinuxAutostart } from './linux-autostart.js';

/** The part of Electron's `app` this needs (types as in electron.d.ts, narrowed). */
export interface LoginItems {
  getLoginItemSettings(options?: { args?: string[] }): { openAtLogin: boolean; wasOpenedAtLogin?: boolean };
  setLoginItemSettings(settings: { openAtLogin: boolean; args?: string[] }): void;
}

export interface StartAtLoginOptions {
  platform: NodeJS.Platform;
  isPackaged: boolean;
  /** app.getAppPath(): the folder Electron was given, when run from source. */
  appPath: string;
  /** process.execPath, or $APPIMAGE for an AppImage (the file the person launches). */
  executable: string;
  loginItems: LoginItems;
  linux: LinuxAutostart;
}

export class StartAtLogin {
  constructor(private readonly options: StartAtLoginOptions) {}

  /** The arguments a login start gets: `--hidden` (stay in the tray), after the app folder from source. */
  args(): string[] {
    const { isPackaged, appPath, platform } = this.options;
    if (isPackaged) return ['--hidden'];
    // Windows keeps the command line as one string: a path with spaces needs its quotes.
    return [platform === 'win32' ? `"${appPath}"` : appPath, '--hidden'];
  }

  async isEnabled(): Promise<boolean> {
    if (this.options.platform === 'linux') return this.options.linux.isEnabled();
    return this.options.loginItems.getLoginItemSettings({ args: this.args() }).openAtLogin;
  }

  async set(enabled: boolean): Promise<void> {
    if (this.options.platform === 'linux') {
      await (enabled ? this.options.linux.enable(this.options.executable, this.args()) : this.options.linux.disable());
      return;
    }
    this.options.loginItems.setLoginItemSettings({ openAtLogin: enabled, args: this.args() });
  }

  /** Whether this start is a login start (then the app stays in the tray). */
  startedAtLogin(argv: readonly string[]): boolean {
    if (argv.includes('--hidden')) return true;
    return this.options.platform === 'darwin' && this.options.loginItems.getLoginItemSettings().wasOpenedAtLogin === true;
  }
}
