/**
 * The app's two windows, created on demand and reused: Settings (which also shows the live
 * connection details, so Show/Hide in the tray toggles it) and About. Every window is
 * sandboxed, context-isolated, without Node, with our preload as its only bridge.
 */
import { BrowserWindow, shell } from 'electron';
import { join } from 'node:path';
import { hardenWebContents, isSafeExternalUrl } from './security.js';

export type WindowName = 'settings' | 'about';

const SIZES: Record<WindowName, { width: number; height: number; title: string }> = {
  settings: { width: 640, height: 760, title: 'CloudToLocalLLM Settings' },
  about: { width: 440, height: 420, title: 'About CloudToLocalLLM' },
};

export class Windows {
  private readonly open = new Map<WindowName, BrowserWindow>();

  constructor(
    private readonly distDir: string,
    private readonly iconPath: string,
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
    hardenWebContents(win.webContents, (url) => {
      if (isSafeExternalUrl(url)) void shell.openExternal(url);
    });
    win.once('ready-to-show', () => win.show());
    win.on('closed', () => this.open.delete(name));
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
