// THE icon source: one small vector description from which every tray and app icon is rendered.
//
// The glyph, on a 24-unit grid: a cloud on top, and below it on the left a computer (screen + base) with a
// link running up to the cloud. The tray icons add a state badge at the bottom right, beside the computer
// and separated from the glyph by a transparent gap:
//   connected   solid cloud, solid link, solid computer; badge: a disc with a tick cut out of it
//   connecting  solid, the link reduced to a dot;         badge: an open ring (a "spinner", no disc)
//   error       solid, the link broken (stubs, no middle); badge: a triangle with an exclamation mark
//   signed-out  cloud and screen drawn hollow, no link;   no badge
// so every state differs in silhouette, not only in colour (Linux and macOS tray icons are single-colour;
// at 16 px the badge outline - none / ring / disc / triangle - still tells them apart when the marks blur).
// The app icon is the connected glyph without a badge, computer centred, white on a blue rounded square.
//
// Edges are snapped to whole pixels and strokes rounded to whole pixels at each size (see Hint), so the
// 16-24 px renderings stay crisp.
import type { TrayState } from '../../main/icons/tray-icon-file.js';
import {
  circle,
  convexPolygon,
  halfPlane,
  innerStroke,
  intersect,
  offset,
  roundRect,
  segment,
  subtract,
  transform,
  union,
  type Layer,
  type Rgba,
  type Scene,
  type Shape,
} from './raster.js';

export const GRID = 24;

/** How a tray icon is coloured. */
export type TrayStyle =
  /** Linux: white on transparent, badge marks cut out. */
  | 'white'
  /** macOS template: black + alpha, badge marks cut out. */
  | 'template'
  /** Windows: coloured glyph and badge, white marks. */
  | 'colour';

function hex(rgb: string, alpha = 1): Rgba {
  const n = Number.parseInt(rgb.slice(1), 16);
  return [((n >> 16) & 0xff) / 255, ((n >> 8) & 0xff) / 255, (n & 0xff) / 255, alpha];
}

const WHITE = hex('#ffffff');
const BLACK = hex('#000000');
/** Mid-tones that read on both light and dark Windows taskbars. */
const GLYPH_COLOUR = hex('#3b82f6');
const GLYPH_COLOUR_SIGNED_OUT = hex('#8b95a5');
const BADGE_COLOUR: Record<TrayState, Rgba> = {
  'signed-out': GLYPH_COLOUR_SIGNED_OUT,
  connecting: hex('#f59e0b'),
  connected: hex('#22c55e'),
  error: hex('#ef4444'),
};
const APP_BACKGROUND_TOP = hex('#3b82f6');
const APP_BACKGROUND_BOTTOM = hex('#1e40af');

/**
 * Pixel-grid fitting ("hinting") for one rendering: edges are moved onto whole device pixels and stroke
 * widths rounded to whole pixels, so 16-24 px icons stay crisp. Coordinates are in the glyph's own units;
 * the glyph may be drawn scaled by `s` and moved by `t` (the app icon does), which the snapping accounts for.
 */
class Hint {
  constructor(
    /** Outer design units per device pixel. */
    readonly px: number,
    readonly s = 1,
    readonly t = 0,
  ) {}

  /** Glyph units per device pixel. */
  get unit(): number {
    return this.px / this.s;
  }

  /** The nearest glyph coordinate that falls on a pixel boundary. */
  at(v: number): number {
    return (Math.round((v * this.s + this.t) / this.px) * this.px - this.t) / this.s;
  }

  /** A length rounded to a whole number of pixels, at least `min`. */
  pixels(v: number, min = 1): number {
    return Math.max(min, Math.round(v / this.unit)) * this.unit;
  }
}

/**
 * The glyph's building blocks at one rendering. `layout` 'badged' puts the computer at the left, leaving the
 * bottom right free for the tray badge; 'centred' (app icon) puts it under the middle of the cloud.
 */
function glyphPieces(h: Hint, layout: 'badged' | 'centred') {
  // Cloud: a wide pill with a big and a small bump. The bump centres sit inside the pill, so the pieces
  // still overlap after shrinking by a stroke width, which keeps innerStroke() (the hollow cloud) clean.
  const pillTop = h.at(6.5);
  const cloudBottom = h.at(12.5);
  const pill = roundRect(h.at(1.5), pillTop, h.at(22.5), cloudBottom, (cloudBottom - pillTop) / 2);
  const bigTop = h.at(1.5);
  const smallTop = h.at(4.5);
  // Both bumps end above the flat bottom, so nothing pokes out below it.
  const cloud = union(pill, circle(14, bigTop + 5, 5), circle(7.5, smallTop + 3.5, 3.5));

  // Computer: a screen on a wider base.
  const dx = layout === 'centred' ? 5.25 : 0;
  const screenTop = h.at(16);
  const screenBottom = h.at(20.75);
  const screen = roundRect(h.at(2 + dx), screenTop, h.at(12.5 + dx), screenBottom, 1.25);
  const baseTop = screenBottom + h.pixels(0.9);
  const baseHeight = h.pixels(1.5);
  const base = roundRect(h.at(0.75 + dx), baseTop, h.at(13.75 + dx), baseTop + baseHeight, baseHeight / 2);

  // The link: a vertical bar from the cloud to the screen, overlapping both a little.
  const linkWidth = h.pixels(2);
  const linkLeft = h.at(7.25 + dx - linkWidth / 2);
  const linkCentre = linkLeft + linkWidth / 2;
  const bar = (y0: number, y1: number): Shape => roundRect(linkLeft, y0, linkLeft + linkWidth, y1, 0);
  const link = bar(cloudBottom - 1, screenTop + 1);
  const gapPixels = Math.round((screenTop - cloudBottom) / h.unit);
  // Broken link: a stub under the cloud and one over the screen, if there is room for a visible gap.
  const stubPixels = Math.floor(gapPixels / 3);
  const brokenLink = stubPixels > 0
    ? union(bar(cloudBottom - 1, cloudBottom + stubPixels * h.unit), bar(screenTop - stubPixels * h.unit, screenTop + 1))
    : undefined;
  // Dotted link: a dot centred in the gap, keeping at least a pixel clear above and below it.
  const dot = Math.max(1, Math.min(Math.round(linkWidth / h.unit), gapPixels - 2)) * h.unit;
  const dotY = h.at((cloudBottom + screenTop) / 2 - dot / 2) + dot / 2;
  const dotX = h.at(linkCentre - dot / 2) + dot / 2;
  const dottedLink = circle(dotX, dotY, dot / 2);
  const screenPixels = Math.round((screenBottom - screenTop) / h.unit);
  return { cloud, screen, screenPixels, base, link, brokenLink, dottedLink };
}

/** The shapes making up one tray icon at one pixel size. */
export interface TrayParts {
  /** Cloud, link and computer (with the badge's gap already cut out). */
  glyph: Shape;
  /** The badge body: a disc (connected), an open ring (connecting) or a triangle (error). */
  badge?: Shape;
  /** The symbol on the badge: cut out of it, or painted white in colour. */
  mark?: Shape;
}

/** Tray glyph parts for `state` at `size` pixels. */
export function trayParts(state: TrayState, size: number): TrayParts {
  const h = new Hint(GRID / size);
  const p = glyphPieces(h, 'badged');
  const stroke = h.pixels(1.75);

  if (state === 'signed-out') {
    // The hollow screen keeps at least one pixel row open inside its frame.
    const frame = Math.max(1, Math.min(Math.round(stroke / h.unit), Math.floor((p.screenPixels - 1) / 2))) * h.unit;
    return { glyph: union(innerStroke(p.cloud, stroke), innerStroke(p.screen, frame), p.base) };
  }

  // Badge: a whole number of pixels across, touching the right and bottom edges.
  const diameter = Math.max(7, Math.round(10.5 / h.px)) * h.px;
  const r = diameter / 2;
  const cx = GRID - r;
  const cy = GRID - r;
  const gap = h.pixels(1);
  const markWidth = h.pixels(0.3 * r);
  const solid = [p.cloud, p.screen, p.base];

  switch (state) {
    case 'connected': {
      const badge = circle(cx, cy, r);
      return {
        glyph: subtract(union(...solid, p.link), offset(badge, gap)),
        badge,
        mark: union(
          segment(cx - 0.5 * r, cy, cx - 0.14 * r, cy + 0.36 * r, markWidth),
          segment(cx - 0.14 * r, cy + 0.36 * r, cx + 0.5 * r, cy - 0.32 * r, markWidth),
        ),
      };
    }
    case 'connecting': {
      const ring = innerStroke(circle(cx, cy, r), h.pixels(0.45 * r));
      // The ring with its top-right quarter open, like a spinner.
      const open = intersect(halfPlane(0, 1, cy), halfPlane(-1, 0, -cx));
      return { glyph: subtract(union(...solid, p.dottedLink), circle(cx, cy, r + gap)), badge: subtract(ring, open) };
    }
    case 'error': {
      const round = 0.2 * r;
      const badge = offset(
        convexPolygon([
          [cx, cy - r + round * 1.6],
          [cx + 1.1 * r - round, cy + r - round],
          [cx - 1.1 * r + round, cy + r - round],
        ]),
        round,
      );
      const parts = p.brokenLink ? [...solid, p.brokenLink] : solid;
      return {
        glyph: subtract(union(...parts), offset(badge, gap)),
        badge,
        mark: union(
          segment(cx, cy - 0.3 * r, cx, cy + 0.25 * r, markWidth),
          circle(cx, cy + 0.62 * r, markWidth * 0.55),
        ),
      };
    }
  }
}

export function trayScene(state: TrayState, style: TrayStyle, size: number): Scene {
  const parts = trayParts(state, size);
  const ink = style === 'template' ? BLACK : style === 'white' ? WHITE : state === 'signed-out' ? GLYPH_COLOUR_SIGNED_OUT : GLYPH_COLOUR;
  const layers: Layer[] = [{ shape: parts.glyph, paint: { kind: 'solid', color: ink } }];
  if (parts.badge) layers.push({ shape: parts.badge, paint: { kind: 'solid', color: style === 'colour' ? BADGE_COLOUR[state] : ink } });
  if (parts.mark) layers.push({ shape: parts.mark, paint: style === 'colour' ? { kind: 'solid', color: WHITE } : { kind: 'erase' } });
  return { grid: GRID, layers };
}

/** The application icon: the connected glyph, without badge, white on a blue rounded square. */
export function appScene(size: number): Scene {
  const px = GRID / size;
  const margin = Math.max(1, Math.round(1 / px)) * px;
  const tile = roundRect(margin, margin, GRID - margin, GRID - margin, 5.25);
  const s = 0.7;
  const t = (GRID - 24 * s) / 2;
  const p = glyphPieces(new Hint(px, s, t), 'centred');
  // A hollow screen reads as a monitor once it has room for a frame and something inside it.
  const frame = new Hint(px, s, t).pixels(1.25);
  const screen = frame * 3 <= 4.75 ? innerStroke(p.screen, frame) : p.screen;
  const glyph = transform(union(p.cloud, screen, p.base, p.link), t, t, s);
  return {
    grid: GRID,
    layers: [
      { shape: tile, paint: { kind: 'vertical', y0: margin, y1: GRID - margin, from: APP_BACKGROUND_TOP, to: APP_BACKGROUND_BOTTOM } },
      { shape: glyph, paint: { kind: 'solid', color: WHITE } },
    ],
  };
}
