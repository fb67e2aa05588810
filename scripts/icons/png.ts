// PNG encoder for 8-bit RGBA images: chunks and row filtering here, compression and CRC-32 by node:zlib.
// No ancillary chunks (no time stamps, no gamma), so the pixels are all a file says. The compressed bytes may
// differ between machines (Node's zlib picks its match finder by CPU), so the icon test compares pixels.
import { crc32, deflateSync } from 'node:zlib';

export interface RgbaImage {
  width: number;
  height: number;
  /** width * height * 4 bytes, straight (non-premultiplied) alpha, rows top to bottom. */
  data: Uint8Array;
}

export const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

function u32(value: number): Uint8Array {
  return Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

function chunk(type: string, data: Uint8Array): Uint8Array[] {
  const typeBytes = new TextEncoder().encode(type);
  return [u32(data.length), typeBytes, data, u32(crc32(data, crc32(typeBytes)))];
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Filters every row with whichever of the five PNG filters gives the smallest sum of |signed bytes|. */
function filterRows(img: RgbaImage): Uint8Array {
  const stride = img.width * 4;
  const out = new Uint8Array((stride + 1) * img.height);
  const candidate = new Uint8Array(stride);
  const best = new Uint8Array(stride);
  const zero = new Uint8Array(stride);
  for (let y = 0; y < img.height; y++) {
    const row = img.data.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? img.data.subarray((y - 1) * stride, y * stride) : zero;
    let bestScore = Infinity;
    let bestType = 0;
    for (let type = 0; type <= 4; type++) {
      let score = 0;
      for (let i = 0; i < stride; i++) {
        const a = i >= 4 ? row[i - 4]! : 0;
        const b = up[i]!;
        const c = i >= 4 ? up[i - 4]! : 0;
        const x = row[i]!;
        const predictor = type === 0 ? 0 : type === 1 ? a : type === 2 ? b : type === 3 ? (a + b) >> 1 : paeth(a, b, c);
        const v = (x - predictor) & 0xff;
        candidate[i] = v;
        score += v < 128 ? v : 256 - v;
      }
      if (score < bestScore) {
        bestScore = score;
        bestType = type;
        best.set(candidate);
      }
    }
    out[y * (stride + 1)] = bestType;
    out.set(best, y * (stride + 1) + 1);
  }
  return out;
}

export function encodePng(img: RgbaImage): Uint8Array {
  if (img.data.length !== img.width * img.height * 4) throw new Error('encodePng: data length does not match size');
  const ihdr = new Uint8Array(13);
  ihdr.set(u32(img.width), 0);
  ihdr.set(u32(img.height), 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type: RGBA
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  const parts = [
    PNG_SIGNATURE,
    ...chunk('IHDR', ihdr),
    ...chunk('IDAT', deflateSync(filterRows(img), { level: 9 })),
    ...chunk('IEND', new Uint8Array(0)),
  ];
  return concat(parts);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
