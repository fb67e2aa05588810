/**
 * nativeImage as Electron's behaves where the app depends on it: createFromPath never throws; a
 * missing or undecodable file gives an empty image (a blank tray icon, not an error). PNG and
 * JPEG decode everywhere, ICO only on Windows; `name@2x.png` next to the file adds the 2x
 * representation; on macOS a name ending in "Template" makes a template image.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';

export class NativeImage {
  /** Not Electron API: which file the image came from, for the test's state dump. */
  readonly sourcePath: string | undefined;
  readonly #size: { width: number; height: number };
  readonly #scales: number[];
  #template: boolean;

  constructor(source: { path?: string; size?: { width: number; height: number }; scales?: number[]; template?: boolean } = {}) {
    this.sourcePath = source.path;
    this.#size = source.size ?? { width: 0, height: 0 };
    this.#scales = source.scales ?? [];
    this.#template = source.template ?? false;
  }

  isEmpty(): boolean {
    return this.#size.width === 0 || this.#size.height === 0;
  }

  getSize(): { width: number; height: number } {
    return { ...this.#size };
  }

  getScaleFactors(): number[] {
    return [...this.#scales];
  }

  isTemplateImage(): boolean {
    return this.#template;
  }

  setTemplateImage(option: boolean): void {
    this.#template = option;
  }

  describe(): Record<string, unknown> {
    return { path: this.sourcePath ?? null, empty: this.isEmpty(), size: this.getSize(), scales: this.getScaleFactors(), template: this.#template };
  }
}

/** Width and height of a PNG, JPEG or (Windows only) ICO; undefined when it is none of them. */
function imageSize(bytes: Buffer, platform: NodeJS.Platform): { width: number; height: number } | undefined {
  if (bytes.length >= 24 && bytes.readUInt32BE(0) === 0x89504e47 && bytes.readUInt32BE(4) === 0x0d0a1a0a && bytes.toString('latin1', 12, 16) === 'IHDR') {
    return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
  }
  if (bytes.length > 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    for (let i = 2; i + 9 < bytes.length; ) {
      if (bytes[i] !== 0xff) return undefined;
      const marker = bytes[i + 1]!;
      if (marker >= 0xc0 && marker <= 0xc3) return { width: bytes.readUInt16BE(i + 7), height: bytes.readUInt16BE(i + 5) };
      i += 2 + bytes.readUInt16BE(i + 2);
    }
    return undefined;
  }
  if (platform === 'win32' && bytes.length >= 22 && bytes.readUInt16LE(0) === 0 && bytes.readUInt16LE(2) === 1 && bytes.readUInt16LE(4) > 0) {
    // The largest entry, as Windows would pick for a large icon; 0 means 256.
    let best = { width: 0, height: 0 };
    for (let i = 0; i < bytes.readUInt16LE(4); i++) {
      const w = bytes[6 + i * 16] || 256;
      const h = bytes[7 + i * 16] || 256;
      if (w > best.width) best = { width: w, height: h };
    }
    return best;
  }
  return undefined;
}

function createFromPath(path: string): NativeImage {
  const platform = process.platform;
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    return new NativeImage({ path });
  }
  const size = imageSize(bytes, platform);
  if (!size) return new NativeImage({ path });
  const ext = extname(path);
  const stem = basename(path, ext);
  const scales = [1];
  if (!stem.endsWith('@2x') && existsSync(join(dirname(path), `${stem}@2x${ext}`))) scales.push(2);
  return new NativeImage({ path, size, scales, template: platform === 'darwin' && stem.replace(/@2x$/, '').endsWith('Template') });
}

export const nativeImage = {
  createFromPath,
  createEmpty: (): NativeImage => new NativeImage(),
  createFromBuffer: (buffer: Buffer): NativeImage => {
    const size = imageSize(buffer, process.platform);
    return size ? new NativeImage({ size, scales: [1] }) : new NativeImage();
  },
};

/** What Electron accepts where an image is expected: a NativeImage or a path. */
export function toImage(image: NativeImage | string): NativeImage {
  return typeof image === 'string' ? createFromPath(image) : image;
}
