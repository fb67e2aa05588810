// Where each icon lives under assets/. Dependency-free on purpose: the Electron main process imports this
// (main/tray-icons.ts re-exports it) without pulling in the rasteriser, and scripts/generate-icons.ts names
// its output files with these same functions, so the resolver and the generated files cannot drift apart.
//
// Paths are relative to the assets/ directory and always use '/', e.g. 'tray/linux/connected-22.png';
// join them onto the assets directory with path.join (which also accepts '/' on Windows).

export const TRAY_STATES = ['signed-out', 'connecting', 'connected', 'error'] as const;
export type TrayState = (typeof TRAY_STATES)[number];
export type TrayScale = 1 | 2;

export function isTrayState(value: unknown): value is TrayState {
  return typeof value === 'string' && (TRAY_STATES as readonly string[]).includes(value);
}

/** Linux tray sizes generated, each also at @2x. */
export const LINUX_TRAY_SIZES = [16, 22, 24, 32] as const;
export type LinuxTraySize = (typeof LINUX_TRAY_SIZES)[number];

/**
 * 22 px is the size Linux panels actually draw status icons at: the freedesktop StatusNotifierItem hosts
 * (KDE Plasma, GNOME's AppIndicator extension, Ubuntu's indicators) and the icon themes' "status" icons are
 * designed on a 22 px grid. A 16 px icon looks lost in a 22-24 px slot and a 32 px one gets scaled down
 * and blurred, while a 22 px icon in a 24 px slot (XFCE's default) is merely given a pixel of padding.
 */
export const LINUX_DEFAULT_TRAY_SIZE: LinuxTraySize = 22;

/** macOS menu bar template images: 16 pt, i.e. 16 px and 32 px (@2x). */
export const MACOS_TRAY_SIZE = 16;

/** Sizes inside each Windows tray .ico: 16 at 100 % scaling, 24 at 150 %, 32 at 200 %, 48 for large-icon views. */
export const WINDOWS_TRAY_SIZES = [16, 24, 32, 48] as const;

/** Sizes inside assets/icon.ico. */
export const APP_ICO_SIZES = [16, 24, 32, 48, 64, 128, 256] as const;

/** electron-builder's Linux icon set: assets/icons/<n>x<n>.png. */
export const APP_PNG_SIZES = [16, 32, 48, 64, 128, 256, 512] as const;

function scaleSuffix(scale: TrayScale): string {
  return scale === 2 ? '@2x' : '';
}

/** A monochrome white-on-transparent PNG; @2x is twice the pixel size. */
export function linuxTrayIconFile(state: TrayState, size: LinuxTraySize = LINUX_DEFAULT_TRAY_SIZE, scale: TrayScale = 1): string {
  return `tray/linux/${state}-${size}${scaleSuffix(scale)}.png`;
}

/**
 * A black + alpha "template" PNG that macOS recolours for light/dark menu bars. Give Electron the 1x path:
 * nativeImage.createFromPath picks up the @2x file next to it by itself, and the name ending in "Template"
 * is what marks it as a template image. The 2x path is for code that assembles the representations itself.
 */
export function macosTrayIconFile(state: TrayState, scale: TrayScale = 1): string {
  return `tray/macos/${state}Template${scaleSuffix(scale)}.png`;
}

/** A colour .ico holding every Windows tray size; Windows picks the one for the current DPI. */
export function windowsTrayIconFile(state: TrayState): string {
  return `tray/windows/${state}.ico`;
}

/**
 * The tray icon for `platform` and `state`, relative to assets/. `scale` selects the @2x file where one
 * exists (Linux, macOS); Windows' .ico has every size in one file, so it is ignored there.
 * Platforms other than darwin and win32 (linux, the BSDs) get the Linux icons.
 */
export function trayIconFile(platform: NodeJS.Platform, state: TrayState, scale: TrayScale = 1): string {
  if (platform === 'darwin') return macosTrayIconFile(state, scale);
  if (platform === 'win32') return windowsTrayIconFile(state);
  return linuxTrayIconFile(state, LINUX_DEFAULT_TRAY_SIZE, scale);
}

/** The application (window/taskbar) icon, relative to assets/: .ico on Windows, the 512 px PNG elsewhere. */
export function appIconFile(platform: NodeJS.Platform): string {
  return platform === 'win32' ? 'icon.ico' : 'icon.png';
}

export function appPngFile(size: (typeof APP_PNG_SIZES)[number]): string {
  return `icons/${size}x${size}.png`;
}
