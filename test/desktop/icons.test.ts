// The committed icons under assets/: decoded here independently of the generator (own chunk parser and
// CRC, node:zlib for inflate, own filter reversal), checked for size, colour rules and distinctness, and
// compared pixel for pixel with a fresh run of scripts/generate-icons.ts (the compressed bytes depend on
// the machine's zlib, the pixels do not).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import type { TrayState as IpcTrayState } from '../../main/ipc-contract.js';
import { GENERATED_DIRS, writeIcons } from '../../scripts/generate-icons.js';
import { encodePng } from '../../scripts/icons/png.js';
import { LINUX_DEFAULT_TRAY_SIZE, TRAY_STATES, appIconFile, isTrayState, trayIconFile, type TrayState } from '../../main/icons/tray-icon-file.js';

const ASSETS = fileURLToPath(new URL('../../assets/', import.meta.url));
const STATES = ['signed-out', 'connecting', 'connected', 'error'] as const;
const LINUX_SIZES = [16, 22, 24, 32];
const WINDOWS_TRAY_SIZES = [16, 24, 32, 48];
const APP_ICO_SIZES = [16, 24, 32, 48, 64, 128, 256];
const APP_PNG_SIZES = [16, 32, 48, 64, 128, 256, 512];

// The tray states the app uses and the ones icons exist for are the same set (checked by the type checker).
const sameStates: [IpcTrayState[], TrayState[]] = [[] as TrayState[], [] as IpcTrayState[]];
void sameStates;

// ---------------------------------------------------------------------------------------------------------
// Decoding, written independently of scripts/icons/.

interface Decoded {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel */
  data: Uint8Array;
  chunks: string[];
  /** PNG filter types used by the rows */
  filters: Set<number>;
}

function crc32Bitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function decodePng(bytes: Uint8Array, name: string): Decoded {
  assert.deepEqual([...bytes.subarray(0, 8)], SIGNATURE, `${name}: PNG signature`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: string[] = [];
  const idat: Uint8Array[] = [];
  let width = 0;
  let height = 0;
  let pos = 8;
  for (;;) {
    assert.ok(pos + 12 <= bytes.length, `${name}: truncated chunk at ${pos}`);
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    assert.ok(pos + 12 + length <= bytes.length, `${name}: ${type} runs past the end`);
    assert.equal(view.getUint32(pos + 8 + length), crc32Bitwise(bytes.subarray(pos + 4, pos + 8 + length)), `${name}: ${type} CRC`);
    chunks.push(type);
    pos += 12 + length;
    if (type === 'IHDR') {
      const h = new DataView(data.buffer, data.byteOffset, data.byteLength);
      width = h.getUint32(0);
      height = h.getUint32(4);
      assert.deepEqual([...data.subarray(8)], [8, 6, 0, 0, 0], `${name}: 8-bit RGBA, deflate, adaptive filter, not interlaced`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
  }
  assert.equal(pos, bytes.length, `${name}: bytes after IEND`);
  assert.equal(chunks[0], 'IHDR', `${name}: IHDR first`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 4;
  assert.equal(raw.length, (stride + 1) * height, `${name}: inflated size`);
  const out = new Uint8Array(stride * height);
  const filters = new Set<number>();
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    filters.add(filter);
    assert.ok(filter <= 4, `${name}: filter type ${filter}`);
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i]!;
      const a = i >= 4 ? out[y * stride + i - 4]! : 0;
      const b = y > 0 ? out[(y - 1) * stride + i]! : 0;
      const c = i >= 4 && y > 0 ? out[(y - 1) * stride + i - 4]! : 0;
      let predicted = 0;
      if (filter === 1) predicted = a;
      else if (filter === 2) predicted = b;
      else if (filter === 3) predicted = Math.floor((a + b) / 2);
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[y * stride + i] = (x + predicted) & 0xff;
    }
  }
  return { width, height, data: out, chunks, filters };
}

interface IcoImage {
  size: number;
  png: Uint8Array;
}

function parseIco(bytes: Uint8Array, name: string): IcoImage[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(view.getUint16(0, true), 0, `${name}: reserved`);
  assert.equal(view.getUint16(2, true), 1, `${name}: type icon`);
  const count = view.getUint16(4, true);
  const images: IcoImage[] = [];
  let expectedOffset = 6 + 16 * count;
  for (let i = 0; i < count; i++) {
    const at = 6 + 16 * i;
    const width = view.getUint8(at) || 256;
    const height = view.getUint8(at + 1) || 256;
    assert.equal(width, height, `${name}[${i}]: square`);
    assert.equal(view.getUint16(at + 4, true), 1, `${name}[${i}]: planes`);
    assert.equal(view.getUint16(at + 6, true), 32, `${name}[${i}]: bits per pixel`);
    const length = view.getUint32(at + 8, true);
    const offset = view.getUint32(at + 12, true);
    assert.equal(offset, expectedOffset, `${name}[${i}]: images packed in order, no overlap`);
    assert.ok(offset + length <= bytes.length, `${name}[${i}]: image inside the file`);
    expectedOffset += length;
    images.push({ size: width, png: bytes.subarray(offset, offset + length) });
  }
  assert.equal(expectedOffset, bytes.length, `${name}: no trailing bytes`);
  return images;
}

function read(rel: string): Uint8Array {
  return new Uint8Array(readFileSync(join(ASSETS, ...rel.split('/'))));
}

function png(rel: string): Decoded {
  return decodePng(read(rel), rel);
}

function pixels(img: Decoded): Array<[number, number, number, number]> {
  const out: Array<[number, number, number, number]> = [];
  for (let i = 0; i < img.data.length; i += 4) out.push([img.data[i]!, img.data[i + 1]!, img.data[i + 2]!, img.data[i + 3]!]);
  return out;
}

/** Share of pixels at least half opaque. */
function inked(img: Decoded): number {
  return pixels(img).filter((p) => p[3] >= 128).length / (img.width * img.height);
}

/** Share of pixels whose alpha differs by at least half between two same-size images. */
function alphaDifference(a: Decoded, b: Decoded): number {
  let n = 0;
  for (let i = 3; i < a.data.length; i += 4) if (Math.abs(a.data[i]! - b.data[i]!) >= 128) n++;
  return n / (a.width * a.height);
}

function assertSingleInk(img: Decoded, value: number, name: string): void {
  const wrong = pixels(img).findIndex(([r, g, b, a]) => a > 0 && (r !== value || g !== value || b !== value));
  if (wrong >= 0) {
    const [r, g, b, a] = pixels(img)[wrong]!;
    assert.fail(`${name}: pixel ${wrong % img.width},${Math.floor(wrong / img.width)} is ${r},${g},${b},${a}; want ${value},${value},${value} wherever alpha > 0`);
  }
}

function assertShapesDistinct(images: ReadonlyMap<string, Decoded>, what: string): void {
  const entries = [...images];
  for (let i = 0; i < entries.length; i++) {
    for (let j = i + 1; j < entries.length; j++) {
      const [na, a] = entries[i]!;
      const [nb, b] = entries[j]!;
      const diff = alphaDifference(a, b);
      assert.ok(diff >= 0.03, `${what}: ${na} and ${nb} differ in only ${(diff * 100).toFixed(1)} % of pixels`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------

const expectedPngs = new Map<string, number>();
for (const state of STATES) {
  for (const size of LINUX_SIZES) {
    expectedPngs.set(`tray/linux/${state}-${size}.png`, size);
    expectedPngs.set(`tray/linux/${state}-${size}@2x.png`, size * 2);
  }
  expectedPngs.set(`tray/macos/${state}Template.png`, 16);
  expectedPngs.set(`tray/macos/${state}Template@2x.png`, 32);
}
expectedPngs.set('icon.png', 512);
expectedPngs.set('icon-256.png', 256);
for (const size of APP_PNG_SIZES) expectedPngs.set(`icons/${size}x${size}.png`, size);
const expectedIcos = new Map<string, number[]>([
  ...STATES.map((state): [string, number[]] => [`tray/windows/${state}.ico`, WINDOWS_TRAY_SIZES]),
  ['icon.ico', APP_ICO_SIZES],
]);

describe('committed icons', () => {
  it('every expected PNG exists, decodes, has the right pixel size and only IHDR/IDAT/IEND chunks', () => {
    const filters = new Set<number>();
    for (const [rel, size] of expectedPngs) {
      assert.ok(existsSync(join(ASSETS, rel)), `missing assets/${rel}`);
      const img = png(rel);
      assert.equal(img.width, size, `${rel}: width`);
      assert.equal(img.height, size, `${rel}: height`);
      assert.deepEqual([...new Set(img.chunks)], ['IHDR', 'IDAT', 'IEND'], `${rel}: chunks`);
      for (const f of img.filters) filters.add(f);
    }
    // All five row filters occur, so every branch of the decoder above has been checked against real files.
    assert.deepEqual([...filters].sort(), [0, 1, 2, 3, 4]);
  });

  it('Linux tray icons are white on transparent, not empty, and different for every state', () => {
    for (const size of LINUX_SIZES) {
      for (const suffix of ['', '@2x']) {
        const byState = new Map<string, Decoded>();
        for (const state of STATES) {
          const rel = `tray/linux/${state}-${size}${suffix}.png`;
          const img = png(rel);
          assertSingleInk(img, 255, rel);
          const share = inked(img);
          assert.ok(share >= 0.15 && share <= 0.8, `${rel}: ${(share * 100).toFixed(1)} % of pixels inked`);
          byState.set(state, img);
        }
        assertShapesDistinct(byState, `Linux ${size}${suffix}`);
      }
    }
  });

  it('macOS tray icons are template images (black + alpha only), 16 and 32 px, different for every state', () => {
    for (const suffix of ['', '@2x']) {
      const byState = new Map<string, Decoded>();
      for (const state of STATES) {
        const rel = `tray/macos/${state}Template${suffix}.png`;
        const img = png(rel);
        assertSingleInk(img, 0, rel);
        assert.ok(inked(img) >= 0.15, `${rel}: nearly empty`);
        byState.set(state, img);
      }
      assertShapesDistinct(byState, `macOS${suffix}`);
    }
  });

  it('.ico files list the expected sizes, each entry a valid PNG of that size', () => {
    for (const [rel, sizes] of expectedIcos) {
      assert.ok(existsSync(join(ASSETS, rel)), `missing assets/${rel}`);
      const images = parseIco(read(rel), rel);
      assert.deepEqual(images.map((i) => i.size), sizes, `${rel}: entry sizes`);
      for (const image of images) {
        const img = decodePng(image.png, `${rel}@${image.size}`);
        assert.equal(img.width, image.size, `${rel}@${image.size}: PNG width matches ICONDIRENTRY`);
        assert.equal(img.height, image.size, `${rel}@${image.size}: PNG height matches ICONDIRENTRY`);
      }
    }
  });

  it('Windows tray icons are not empty and differ between states at every size', () => {
    for (const [index, size] of WINDOWS_TRAY_SIZES.entries()) {
      const byState = new Map<string, Decoded>();
      for (const state of STATES) {
        const rel = `tray/windows/${state}.ico`;
        const img = decodePng(parseIco(read(rel), rel)[index]!.png, rel);
        assert.ok(inked(img) >= 0.15, `${rel}@${size}: nearly empty`);
        byState.set(state, img);
      }
      assertShapesDistinct(byState, `Windows ${size}`);
    }
  });

  it('app icons: an opaque tile with transparent corners; the duplicates are the same file', () => {
    for (const size of APP_PNG_SIZES) {
      const img = png(`icons/${size}x${size}.png`);
      const centre = ((size >> 1) * size + (size >> 1)) * 4;
      assert.equal(img.data[centre + 3], 255, `icons/${size}x${size}.png: opaque centre`);
      assert.equal(img.data[3], 0, `icons/${size}x${size}.png: transparent corner`);
    }
    assert.deepEqual(read('icon.png'), read('icons/512x512.png'));
    assert.deepEqual(read('icon-256.png'), read('icons/256x256.png'));
  });

  it('assets/README.md says the files are generated', () => {
    assert.match(new TextDecoder().decode(read('README.md')), /npm run icons/);
  });
});

describe('trayIconFile', () => {
  it('resolves every platform, state and scale to a committed file', () => {
    for (const platform of ['linux', 'darwin', 'win32', 'freebsd'] as const) {
      for (const state of TRAY_STATES) {
        for (const scale of [1, 2] as const) {
          const rel = trayIconFile(platform, state, scale);
          assert.ok(existsSync(join(ASSETS, rel)), `${platform} ${state} x${scale}: assets/${rel} missing`);
        }
      }
    }
    for (const platform of ['linux', 'darwin', 'win32'] as const) assert.ok(existsSync(join(ASSETS, appIconFile(platform))));
  });

  it('picks 22 px on Linux, Template images on macOS and the .ico on Windows', () => {
    assert.equal(LINUX_DEFAULT_TRAY_SIZE, 22);
    assert.equal(trayIconFile('linux', 'connected', 1), 'tray/linux/connected-22.png');
    assert.equal(trayIconFile('linux', 'error', 2), 'tray/linux/error-22@2x.png');
    assert.equal(trayIconFile('openbsd', 'connecting', 1), 'tray/linux/connecting-22.png');
    assert.equal(trayIconFile('darwin', 'signed-out', 1), 'tray/macos/signed-outTemplate.png');
    assert.equal(trayIconFile('darwin', 'connected', 2), 'tray/macos/connectedTemplate@2x.png');
    assert.equal(trayIconFile('win32', 'error', 1), 'tray/windows/error.ico');
    assert.equal(trayIconFile('win32', 'error', 2), 'tray/windows/error.ico');
    assert.equal(appIconFile('win32'), 'icon.ico');
    assert.equal(appIconFile('linux'), 'icon.png');
  });

  it('knows exactly the four states', () => {
    assert.deepEqual([...TRAY_STATES].sort(), [...STATES].sort());
    assert.ok(isTrayState('connected'));
    assert.ok(!isTrayState('Connected'));
    assert.ok(!isTrayState(undefined));
  });
});

describe('generator', () => {
  let out = '';
  before(() => {
    out = mkdtempSync(join(tmpdir(), 'icons-'));
  });
  after(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('regenerates the same pixels in every file (nobody edited assets/ by hand or forgot to rerun npm run icons)', () => {
    const { written } = writeIcons(out);
    const samePixels = (a: Uint8Array, b: Uint8Array, name: string): boolean => {
      const [x, y] = [decodePng(a, `assets/${name}`), decodePng(b, `generated ${name}`)];
      return x.width === y.width && x.height === y.height && Buffer.compare(x.data, y.data) === 0;
    };
    const same = (rel: string): boolean => {
      if (!existsSync(join(ASSETS, rel))) return false;
      const [committed, generated] = [read(rel), new Uint8Array(readFileSync(join(out, rel)))];
      if (rel.endsWith('.png')) return samePixels(committed, generated, rel);
      if (rel.endsWith('.ico')) {
        const [a, b] = [parseIco(committed, rel), parseIco(generated, rel)];
        return a.length === b.length && a.every((image, i) => image.size === b[i]!.size && samePixels(image.png, b[i]!.png, `${rel}@${image.size}`));
      }
      return Buffer.compare(committed, generated) === 0;
    };
    const differing = written.filter((rel) => !same(rel));
    assert.deepEqual(differing, [], `regenerate with "npm run icons"; these differ from the generator's output: ${differing.join(', ')}`);
    // Nothing stale left in the generator's own directories.
    const listed = (dir: string): string[] =>
      readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? listed(join(dir, name)) : [relative(ASSETS, join(dir, name)).split(sep).join('/')]));
    const committed = GENERATED_DIRS.flatMap((sub) => (existsSync(join(ASSETS, sub)) ? listed(join(ASSETS, sub)) : []));
    const extra = committed.filter((rel) => !written.includes(rel));
    assert.deepEqual(extra, [], 'files in assets/ the generator does not produce');
    for (const rel of [...expectedPngs.keys(), ...expectedIcos.keys()]) assert.ok(written.includes(rel), `generator does not write ${rel}`);
  });
});

describe('encoders', () => {
  it('the PNG encoder output decodes to the same pixels', () => {
    const width = 37;
    const height = 23;
    const data = new Uint8Array(width * height * 4);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + ((i / 37) | 0) * 13) & 0xff;
    for (let i = 0; i < width * 4 * 5; i++) data[i] = 0; // flat rows favour None/Up
    const img = decodePng(encodePng({ width, height, data }), 'synthetic');
    assert.equal(img.width, width);
    assert.equal(img.height, height);
    assert.deepEqual(img.data, data);
  });
});
