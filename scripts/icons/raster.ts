// A tiny anti-aliased rasteriser for shapes given as signed distance functions (negative inside).
//
// Coverage: where a pixel is clearly inside or outside (|distance| > half its diagonal) it is 1 or 0;
// otherwise the pixel is split into SUB x SUB samples and each contributes a one-sample-wide linear ramp
// across the edge. Only + - * / and Math.sqrt are used (all exactly specified by IEEE 754), so the
// output is the same on every machine.
import type { RgbaImage } from './png.js';

export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** A region of the plane, in design units. */
export interface Shape {
  /** Signed distance (or a lower bound of its magnitude) from (x, y) to the edge; negative inside. */
  sd(x: number, y: number): number;
  /** Everything inside lies within this box. */
  bounds: Box;
}

const EMPTY: Box = { x0: 0, y0: 0, x1: 0, y1: 0 };

function boxUnion(boxes: readonly Box[]): Box {
  if (boxes.length === 0) return EMPTY;
  return {
    x0: Math.min(...boxes.map((b) => b.x0)),
    y0: Math.min(...boxes.map((b) => b.y0)),
    x1: Math.max(...boxes.map((b) => b.x1)),
    y1: Math.max(...boxes.map((b) => b.y1)),
  };
}

export function circle(cx: number, cy: number, r: number): Shape {
  return {
    sd: (x, y) => Math.sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy)) - r,
    bounds: { x0: cx - r, y0: cy - r, x1: cx + r, y1: cy + r },
  };
}

/** Axis-aligned rectangle from (x0, y0) to (x1, y1) with corner radius r. */
export function roundRect(x0: number, y0: number, x1: number, y1: number, r: number): Shape {
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const hx = (x1 - x0) / 2;
  const hy = (y1 - y0) / 2;
  const rr = Math.min(r, hx, hy);
  return {
    sd: (x, y) => {
      const qx = Math.abs(x - cx) - hx + rr;
      const qy = Math.abs(y - cy) - hy + rr;
      const ox = Math.max(qx, 0);
      const oy = Math.max(qy, 0);
      return Math.sqrt(ox * ox + oy * oy) + Math.min(Math.max(qx, qy), 0) - rr;
    },
    bounds: { x0, y0, x1, y1 },
  };
}

/** A line from (ax, ay) to (bx, by), `width` wide, with round caps. */
export function segment(ax: number, ay: number, bx: number, by: number, width: number): Shape {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const h = width / 2;
  return {
    sd: (x, y) => {
      const px = x - ax;
      const py = y - ay;
      const t = len2 === 0 ? 0 : Math.min(1, Math.max(0, (px * dx + py * dy) / len2));
      const ex = px - dx * t;
      const ey = py - dy * t;
      return Math.sqrt(ex * ex + ey * ey) - h;
    },
    bounds: { x0: Math.min(ax, bx) - h, y0: Math.min(ay, by) - h, x1: Math.max(ax, bx) + h, y1: Math.max(ay, by) + h },
  };
}

/** A convex polygon, points in either winding order. */
export function convexPolygon(points: ReadonlyArray<readonly [number, number]>): Shape {
  const n = points.length;
  // Orientation sign so that "inside" is on the same side of every edge.
  let area = 0;
  for (let i = 0; i < n; i++) {
    const [ax, ay] = points[i]!;
    const [bx, by] = points[(i + 1) % n]!;
    area += ax * by - bx * ay;
  }
  const orient = area > 0 ? 1 : -1;
  return {
    sd: (x, y) => {
      let dist = Infinity;
      let outside = false;
      for (let i = 0; i < n; i++) {
        const [ax, ay] = points[i]!;
        const [bx, by] = points[(i + 1) % n]!;
        const dx = bx - ax;
        const dy = by - ay;
        const px = x - ax;
        const py = y - ay;
        const t = Math.min(1, Math.max(0, (px * dx + py * dy) / (dx * dx + dy * dy)));
        const ex = px - dx * t;
        const ey = py - dy * t;
        dist = Math.min(dist, Math.sqrt(ex * ex + ey * ey));
        if ((dx * py - dy * px) * orient < 0) outside = true;
      }
      return outside ? dist : -dist;
    },
    bounds: {
      x0: Math.min(...points.map((p) => p[0])),
      y0: Math.min(...points.map((p) => p[1])),
      x1: Math.max(...points.map((p) => p[0])),
      y1: Math.max(...points.map((p) => p[1])),
    },
  };
}

/** The half-plane a*x + b*y <= c, with (a, b) a unit vector. Only useful inside intersect(). */
export function halfPlane(a: number, b: number, c: number): Shape {
  const big = 1e6;
  return { sd: (x, y) => a * x + b * y - c, bounds: { x0: -big, y0: -big, x1: big, y1: big } };
}

export function union(...shapes: Shape[]): Shape {
  return {
    sd: (x, y) => {
      let d = Infinity;
      for (const s of shapes) d = Math.min(d, s.sd(x, y));
      return d;
    },
    bounds: boxUnion(shapes.map((s) => s.bounds)),
  };
}

export function intersect(a: Shape, b: Shape): Shape {
  return {
    sd: (x, y) => Math.max(a.sd(x, y), b.sd(x, y)),
    bounds: {
      x0: Math.max(a.bounds.x0, b.bounds.x0),
      y0: Math.max(a.bounds.y0, b.bounds.y0),
      x1: Math.min(a.bounds.x1, b.bounds.x1),
      y1: Math.min(a.bounds.y1, b.bounds.y1),
    },
  };
}

/** `a` with `b` cut out of it. */
export function subtract(a: Shape, b: Shape): Shape {
  return { sd: (x, y) => Math.max(a.sd(x, y), -b.sd(x, y)), bounds: a.bounds };
}

/** Grows (positive `by`) or shrinks a shape. */
export function offset(a: Shape, by: number): Shape {
  const b = a.bounds;
  return { sd: (x, y) => a.sd(x, y) - by, bounds: { x0: b.x0 - by, y0: b.y0 - by, x1: b.x1 + by, y1: b.y1 + by } };
}

/** A band `width` wide just inside the outline of `a`: the outline drawn without changing the outer size. */
export function innerStroke(a: Shape, width: number): Shape {
  return { sd: (x, y) => { const d = a.sd(x, y); return Math.max(d, -d - width); }, bounds: a.bounds };
}

/** `a` scaled by `s` about the origin, then moved by (tx, ty). */
export function transform(a: Shape, tx: number, ty: number, s: number): Shape {
  const b = a.bounds;
  return {
    sd: (x, y) => a.sd((x - tx) / s, (y - ty) / s) * s,
    bounds: { x0: b.x0 * s + tx, y0: b.y0 * s + ty, x1: b.x1 * s + tx, y1: b.y1 * s + ty },
  };
}

/** Straight-alpha colour, components 0..1. */
export type Rgba = readonly [number, number, number, number];

export type Paint =
  | { kind: 'solid'; color: Rgba }
  /** Vertical gradient: `from` at design y0, `to` at design y1, clamped outside. */
  | { kind: 'vertical'; y0: number; y1: number; from: Rgba; to: Rgba }
  /** Removes what is underneath (alpha multiplied by 1 - coverage). */
  | { kind: 'erase' };

export interface Layer {
  shape: Shape;
  paint: Paint;
}

export interface Scene {
  /** The design grid: the image spans 0..grid units in both directions. */
  grid: number;
  layers: Layer[];
}

const SUB = 4;

/** Renders `scene` into a size x size RGBA image. */
export function rasterise(scene: Scene, size: number): RgbaImage {
  const scale = size / scene.grid; // pixels per design unit
  // Premultiplied RGBA in 0..1.
  const acc = new Float64Array(size * size * 4);
  for (const layer of scene.layers) {
    const b = layer.shape.bounds;
    const px0 = Math.max(0, Math.floor(b.x0 * scale) - 1);
    const py0 = Math.max(0, Math.floor(b.y0 * scale) - 1);
    const px1 = Math.min(size, Math.ceil(b.x1 * scale) + 1);
    const py1 = Math.min(size, Math.ceil(b.y1 * scale) + 1);
    for (let py = py0; py < py1; py++) {
      for (let px = px0; px < px1; px++) {
        const cov = coverage(layer.shape, px, py, scale);
        if (cov <= 0) continue;
        const i = (py * size + px) * 4;
        const paint = layer.paint;
        if (paint.kind === 'erase') {
          for (let k = 0; k < 4; k++) acc[i + k] = acc[i + k]! * (1 - cov);
          continue;
        }
        const color = paint.kind === 'solid' ? paint.color : gradientAt(paint, (py + 0.5) / scale);
        const a = color[3] * cov;
        for (let k = 0; k < 3; k++) acc[i + k] = color[k]! * a + acc[i + k]! * (1 - a);
        acc[i + 3] = a + acc[i + 3]! * (1 - a);
      }
    }
  }
  const data = new Uint8Array(size * size * 4);
  for (let i = 0; i < acc.length; i += 4) {
    const a = acc[i + 3]!;
    const a8 = toByte(a);
    if (a8 === 0) continue; // fully transparent pixels are stored as 0,0,0,0
    for (let k = 0; k < 3; k++) data[i + k] = toByte(acc[i + k]! / a);
    data[i + 3] = a8;
  }
  return { width: size, height: size, data };
}

function toByte(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v * 255)));
}

function gradientAt(p: { y0: number; y1: number; from: Rgba; to: Rgba }, y: number): Rgba {
  const t = Math.max(0, Math.min(1, (y - p.y0) / (p.y1 - p.y0)));
  return [0, 1, 2, 3].map((k) => p.from[k]! + (p.to[k]! - p.from[k]!) * t) as unknown as Rgba;
}

function coverage(shape: Shape, px: number, py: number, scale: number): number {
  const centre = shape.sd((px + 0.5) / scale, (py + 0.5) / scale) * scale; // in pixels
  if (centre >= 0.75) return 0;
  if (centre <= -0.75) return 1;
  let sum = 0;
  for (let j = 0; j < SUB; j++) {
    for (let i = 0; i < SUB; i++) {
      const d = shape.sd((px + (i + 0.5) / SUB) / scale, (py + (j + 0.5) / SUB) / scale) * scale * SUB;
      sum += Math.max(0, Math.min(1, 0.5 - d));
    }
  }
  return sum / (SUB * SUB);
}
