/**
 * The app's two windows, created on demand and reused: Settings (which also shows the live
 * connection details, so Show/Hide in the tray toggles it) and About. Every window is
 * sandboxed, context-isolated, without Node, with our preload as its only bridge.
 */
import { BrowserWindow } from 'electron';
import { join } from 'node:path';
import { hardenWebContents } from './security.js';

export type WindowName = 'settings' | 'about';

// The titles are the pages' own <title>s, which replace a window's title once they load.
const SIZES: Record<WindowName, { width: number; height: number; title: string }> = {
  settings: { width: 640, height: 760, title: 'CloudToLocalLLM settings' },
  about: { width: 440, height: 420, title: 'About CloudToLocalLLM' },
};

export interface WindowsOptions {
  /** Opens an http(s) link in the system browser (the windows themselves never navigate). */
  openExternal(url: string): void | Promise<void>;
  /** A window appeared or went: the tray's Show/Hide follows it. */
  onVisibilityChange(): void;
}

export class Windows {
  private readonly open = new Map<WindowName, BrowserWindow>();

  constructor(
    private readonly distDir: string,
    private readonly iconPath: string,
    private readonly options: WindowsOptions,
  ) {}

  /** file:// URL of the folder our pages load from (IPC trusts only frames from it). */
  get rendererDirUrl(): string {
    return new URL(`file://${join(this.distDir, 'renderer')}/`).href;
  }

  get(name: WindowName): BrowserWindow | undefined {
    const w = this.open.get(name);
    return w && !w.isDestroyed() ? w : undefined;
  }

  isVisible(name: WindowName): boolean {
    return this.get(name)?.isVisible() ?? false;
  }

  show(name: WindowName): BrowserWindow {
    const existing = this.get(name);
    if (existing) {
      if (existing.isMinimized()) existing.restore();
      existing.show();
      existing.focus();
      return existing;
    }
    const size = SIZES[name];
    const win = new BrowserWindow({
      width: size.width,
      height: size.height,
      title: size.title,
      icon: this.iconPath,
      show: false,
      minWidth: 420,
      minHeight: 360,
      autoHideMenuBar: true,
      webPreferences: {
        preload: join(this.distDir, 'main', 'preload.cjs'),
        contextIsolation: true,
        sandbox: true,
        nodeIntegration: false,
        nodeIntegrationInWorker: false,
        webSecurity: true,
        allowRunningInsecureContent: false,
        webviewTag: false,
        navigateOnDragDrop: false,
        spellcheck: false,
      },
    });
    // hardenWebContents passes on only http(s) links.
    hardenWebContents(win.webContents, (url) => void this.options.openExternal(url));
    win.once('ready-to-show', () => win.show());
    const visibilityChanged = (): void => this.options.onVisibilityChange();
    win.on('show', visibilityChanged);
    win.on('hide', visibilityChanged);
    win.on('minimize', visibilityChanged);
    win.on('restore', visibilityChanged);
    win.on('closed', () => {
      this.open.delete(name);
      this.options.onVisibilityChange();
    });
    void win.loadFile(join(this.distDir, 'renderer', `${name}.html`));
    this.open.set(name, win);
    return win;
  }

  toggle(name: WindowName): void {
    const w = this.get(name);
    if (w?.isVisible()) w.hide();
    else this.show(name);
  }

  broadcast(channel: string, payload: unknown): void {
    for (const w of this.open.values()) if (!w.isDestroyed()) w.webContents.send(channel, payload);
  }
}
