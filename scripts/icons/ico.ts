// ICO container (ICONDIR + ICONDIRENTRY records) whose images are stored as PNG, as Windows Vista and later
// read them (and as Electron's nativeImage does on Windows).
import { concat } from './png.js';

export interface IcoEntry {
  /** Pixel size, 1..256 (square). */
  size: number;
  /** A complete PNG file of that size. */
  png: Uint8Array;
}

export function encodeIco(entries: readonly IcoEntry[]): Uint8Array {
  const header = new DataView(new ArrayBuffer(6 + 16 * entries.length));
  header.setUint16(0, 0, true); // reserved
  header.setUint16(2, 1, true); // type 1 = icon
  header.setUint16(4, entries.length, true);
  let offset = header.byteLength;
  entries.forEach((entry, i) => {
    if (!Number.isInteger(entry.size) || entry.size < 1 || entry.size > 256) throw new Error(`encodeIco: bad size ${entry.size}`);
    const at = 6 + 16 * i;
    header.setUint8(at, entry.size === 256 ? 0 : entry.size); // width, 0 means 256
    header.setUint8(at + 1, entry.size === 256 ? 0 : entry.size); // height
    header.setUint8(at + 2, 0); // palette colours
    header.setUint8(at + 3, 0); // reserved
    header.setUint16(at + 4, 1, true); // colour planes
    header.setUint16(at + 6, 32, true); // bits per pixel
    header.setUint32(at + 8, entry.png.length, true);
    header.setUint32(at + 12, offset, true);
    offset += entry.png.length;
  });
  return concat([new Uint8Array(header.buffer), ...entries.map((e) => e.png)]);
}
