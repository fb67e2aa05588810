/**
 * Tray: its image, tooltip and context menu, reported to the test on every change. The test
 * clicks items of the menu that is set (through MenuItem.click, so roles behave as in Electron).
 */
import { EventEmitter } from 'node:events';
import { control } from './control.js';
import type { Menu } from './menu.js';
import { toImage, type NativeImage } from './native-image.js';

let current: Tray | undefined;
/** A tray report waiting for the end of this turn: setImage, setToolTip, setContextMenu in a row give one. */
let pending: Record<string, unknown> | undefined;

function flush(): void {
  if (!pending) return;
  const tray = pending;
  pending = undefined;
  control.event('tray', tray);
}
control.beforeEvents(flush);

export class Tray extends EventEmitter {
  #image: NativeImage;
  #toolTip = '';
  #title = '';
  #menu: Menu | null = null;
  #destroyed = false;

  constructor(image: NativeImage | string, _guid?: string) {
    super();
    this.#image = toImage(image);
    current = this;
    this.#report();
  }

  setImage(image: NativeImage | string): void {
    this.#image = toImage(image);
    this.#report();
  }

  setPressedImage(_image: NativeImage | string): void {}

  setToolTip(toolTip: string): void {
    this.#toolTip = toolTip;
    this.#report();
  }

  setTitle(title: string): void {
    this.#title = title;
    this.#report();
  }

  getTitle(): string {
    return this.#title;
  }

  setContextMenu(menu: Menu | null): void {
    this.#menu = menu;
    this.#report();
  }

  popUpContextMenu(): void {}

  closeContextMenu(): void {}

  getBounds(): { x: number; y: number; width: number; height: number } {
    return { x: 0, y: 0, width: 22, height: 22 };
  }

  destroy(): void {
    this.#destroyed = true;
    if (current === this) current = undefined;
    pending = { tray: null };
    flush();
  }

  isDestroyed(): boolean {
    return this.#destroyed;
  }

  /** Not Electron API: the menu as it is now. */
  get contextMenu(): Menu | null {
    return this.#menu;
  }

  describe(): Record<string, unknown> {
    return { image: this.#image.describe(), toolTip: this.#toolTip, title: this.#title, menu: this.#menu?.describe() ?? null };
  }

  #report(): void {
    if (this.#destroyed) return;
    if (!pending) queueMicrotask(flush);
    pending = { tray: this.describe() };
  }
}

export function currentTray(): Tray | undefined {
  return current;
}

control.on('click', (args) => {
  const id = String(args['id']);
  const menu = current?.contextMenu;
  if (!menu) throw new Error('there is no tray menu to click');
  const item = menu.getMenuItemById(id);
  if (!item) throw new Error(`the tray menu has no item "${id}"`);
  if (!item.enabled) throw new Error(`the tray menu item "${id}" is disabled`);
  if (!item.visible) throw new Error(`the tray menu item "${id}" is hidden`);
  item.click({}, undefined, undefined);
  return null;
});
