/**
 * Menu and MenuItem as Electron builds them (lib/browser/api/menu-item.ts, menu-item-roles.ts):
 * a template is validated into MenuItems; an item with a `role` runs the role's action when
 * clicked and its `click` is ignored (Electron's docs: "when specified the click property will be
 * ignored"); a role gives its default label.
 */
import type { App } from './app.js';

export type MenuItemType = 'normal' | 'separator' | 'submenu' | 'checkbox' | 'radio';

export interface MenuItemOptions {
  id?: string;
  label?: string;
  sublabel?: string;
  toolTip?: string;
  type?: MenuItemType;
  role?: string;
  enabled?: boolean;
  visible?: boolean;
  checked?: boolean;
  accelerator?: string;
  submenu?: MenuItemOptions[] | Menu;
  click?: (menuItem: MenuItem, window: unknown, event: unknown) => void;
}

let appRef: App | undefined;
/** Roles reach the app; app.ts registers itself here (no import cycle at load time). */
export function bindApp(app: App): void {
  appRef = app;
}

/** Roles whose action is an app method, as in Electron's menu-item-roles.ts; others need a window. */
const APP_ROLES: Record<string, { label: () => string; run: (app: App) => void }> = {
  quit: { label: () => (process.platform === 'darwin' ? `Quit ${appRef?.name ?? ''}` : process.platform === 'win32' ? 'Exit' : 'Quit'), run: (app) => app.quit() },
  about: { label: () => (process.platform === 'linux' ? 'About' : `About ${appRef?.name ?? ''}`), run: (app) => app.showAboutPanel() },
  hide: { label: () => `Hide ${appRef?.name ?? ''}`, run: (app) => app.hide() },
};

const TYPES: readonly MenuItemType[] = ['normal', 'separator', 'submenu', 'checkbox', 'radio'];

export class MenuItem {
  readonly id: string | undefined;
  label: string;
  sublabel: string;
  toolTip: string;
  readonly type: MenuItemType;
  readonly role: string | undefined;
  enabled: boolean;
  visible: boolean;
  checked: boolean;
  readonly accelerator: string | undefined;
  readonly submenu: Menu | undefined;
  /** Electron's wrapper: the role's action if it has one, else the template's click. */
  readonly click: (event?: unknown, focusedWindow?: unknown, focusedWebContents?: unknown) => void;
  /** Not Electron API: whether the template had a click (for the test's state dump). */
  readonly hasClick: boolean;

  constructor(options: MenuItemOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('Invalid template for MenuItem: must be an object');
    if (options.label === undefined && options.role === undefined && options.type === undefined) {
      throw new Error('Invalid template for MenuItem: must have at least one of label, role or type');
    }
    if (options.type !== undefined && !TYPES.includes(options.type)) throw new Error(`Unknown menu item type: ${String(options.type)}`);
    const submenu = options.submenu === undefined ? undefined : options.submenu instanceof Menu ? options.submenu : Menu.buildFromTemplate(options.submenu);
    this.id = options.id;
    this.type = options.type ?? (submenu ? 'submenu' : 'normal');
    if (this.type === 'submenu' && !submenu) throw new Error('Invalid submenu');
    this.role = options.role;
    const role = this.role ? APP_ROLES[this.role] : undefined;
    this.label = options.label ?? role?.label() ?? '';
    this.sublabel = options.sublabel ?? '';
    this.toolTip = options.toolTip ?? '';
    this.enabled = options.enabled ?? true;
    this.visible = options.visible ?? true;
    this.checked = options.checked ?? false;
    this.accelerator = options.accelerator;
    this.submenu = submenu;
    this.hasClick = typeof options.click === 'function';
    const click = options.click;
    this.click = (event, focusedWindow) => {
      if (this.type === 'checkbox') this.checked = !this.checked;
      if (role && appRef) {
        role.run(appRef);
        return;
      }
      if (typeof click === 'function') click(this, focusedWindow, event ?? {});
    };
  }

  describe(): Record<string, unknown> {
    return {
      id: this.id ?? null,
      label: this.label,
      type: this.type,
      role: this.role ?? null,
      enabled: this.enabled,
      visible: this.visible,
      checked: this.checked,
      hasClick: this.hasClick,
      ...(this.submenu ? { submenu: this.submenu.describe() } : {}),
    };
  }
}

export class Menu {
  readonly items: MenuItem[] = [];

  static buildFromTemplate(template: Array<MenuItemOptions | MenuItem>): Menu {
    if (!Array.isArray(template)) throw new TypeError('Invalid template for Menu: Menu template must be an array');
    const menu = new Menu();
    for (const entry of template) menu.append(entry instanceof MenuItem ? entry : new MenuItem(entry));
    return menu;
  }

  static setApplicationMenu(_menu: Menu | null): void {}

  static getApplicationMenu(): Menu | null {
    return null;
  }

  append(item: MenuItem): void {
    this.items.push(item);
  }

  insert(position: number, item: MenuItem): void {
    this.items.splice(position, 0, item);
  }

  getMenuItemById(id: string): MenuItem | null {
    for (const item of this.items) {
      if (item.id === id) return item;
      const inner = item.submenu?.getMenuItemById(id);
      if (inner) return inner;
    }
    return null;
  }

  popup(): void {}

  closePopup(): void {}

  describe(): Array<Record<string, unknown>> {
    return this.items.map((i) => i.describe());
  }
}
