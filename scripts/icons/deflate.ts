// A small, deterministic zlib (RFC 1950) / DEFLATE (RFC 1951) encoder.
//
// Why not node:zlib's deflateSync? Node bundles Chromium's zlib, whose match finder hashes with the CPU's
// CRC32C instruction when it has one (deps/zlib/contrib/optimizations/insert_string.h), so the compressed
// bytes differ between machines (and between zlib updates). The committed icons must be byte-for-byte
// reproducible anywhere, so compression is done here in plain JS: LZ77 with hash chains and one-step lazy
// matching, then dynamic Huffman blocks. Every choice depends only on the input bytes. node:zlib still
// *decodes* these streams in the tests, which checks this encoder independently.

const WINDOW = 32768;
const MIN_MATCH = 3;
const MAX_MATCH = 258;
const MAX_CHAIN = 256;
const NICE_MATCH = 128;
const HASH_BITS = 15;
const HASH_SIZE = 1 << HASH_BITS;
const BLOCK_TOKENS = 1 << 16;

const LENGTH_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LENGTH_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
/** Order in which code-length code lengths are sent (RFC 1951 3.2.7). */
const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** Symbol index for each match length 3..258. */
const LENGTH_CODE = new Uint8Array(MAX_MATCH + 1);
for (let code = 0; code < LENGTH_BASE.length; code++) {
  const base = LENGTH_BASE[code]!;
  const end = code === LENGTH_BASE.length - 1 ? MAX_MATCH : base + (1 << LENGTH_EXTRA[code]!) - 1;
  for (let len = base; len <= end; len++) LENGTH_CODE[len] = code;
}

function distCode(dist: number): number {
  let code = 0;
  while (code + 1 < DIST_BASE.length && DIST_BASE[code + 1]! <= dist) code++;
  return code;
}

class BitWriter {
  private bytes: number[] = [];
  private acc = 0;
  private count = 0;

  /** Writes `n` (<= 16) bits of `value`, least significant first. */
  bits(value: number, n: number): void {
    this.acc |= (value & ((1 << n) - 1)) << this.count;
    this.count += n;
    while (this.count >= 8) {
      this.bytes.push(this.acc & 0xff);
      this.acc >>>= 8;
      this.count -= 8;
    }
  }

  /** Writes a Huffman code (given MSB-first, as canonical codes are defined). */
  code(code: number, len: number): void {
    let rev = 0;
    for (let i = 0; i < len; i++) rev |= ((code >> i) & 1) << (len - 1 - i);
    this.bits(rev, len);
  }

  finish(): number[] {
    if (this.count > 0) this.bytes.push(this.acc & 0xff);
    this.acc = 0;
    this.count = 0;
    return this.bytes;
  }
}

/** Huffman code lengths for `freqs`, none longer than `limit`. Ties break by symbol, so the result is deterministic. */
export function huffmanLengths(freqs: readonly number[], limit: number): number[] {
  let f = freqs.slice();
  for (;;) {
    const lens = unlimitedLengths(f);
    if (Math.max(0, ...lens) <= limit) return lens;
    // Flatten the distribution and retry; converges to a balanced tree (ceil(log2 n) <= limit for deflate's alphabets).
    f = f.map((x) => (x === 0 ? 0 : Math.max(1, x >> 1)));
  }
}

function unlimitedLengths(freqs: readonly number[]): number[] {
  const lens = new Array<number>(freqs.length).fill(0);
  const leaves = freqs.map((f, s) => ({ f, s })).filter((l) => l.f > 0);
  if (leaves.length === 0) return lens;
  if (leaves.length === 1) {
    lens[leaves[0]!.s] = 1;
    return lens;
  }
  leaves.sort((a, b) => a.f - b.f || a.s - b.s);
  // Two-queue Huffman construction: leaves in order, internal nodes are created in non-decreasing weight.
  const parent: number[] = []; // node index -> parent index; leaves are 0..n-1, internal nodes n..
  const weight: number[] = leaves.map((l) => l.f);
  const n = leaves.length;
  let li = 0;
  let ii = n;
  const take = (): number => {
    if (li < n && (ii >= weight.length || weight[li]! <= weight[ii]!)) return li++;
    return ii++;
  };
  while (weight.length < 2 * n - 1) {
    const a = take();
    const b = take();
    const node = weight.length;
    weight.push(weight[a]! + weight[b]!);
    parent[a] = node;
    parent[b] = node;
  }
  const depth = new Array<number>(weight.length).fill(0);
  for (let node = weight.length - 2; node >= 0; node--) depth[node] = depth[parent[node]!]! + 1;
  for (let i = 0; i < n; i++) lens[leaves[i]!.s] = depth[i]!;
  return lens;
}

/** Canonical Huffman codes (RFC 1951 3.2.2) for the given lengths. */
function canonicalCodes(lens: readonly number[]): number[] {
  const maxLen = Math.max(0, ...lens);
  const blCount = new Array<number>(maxLen + 1).fill(0);
  for (const l of lens) if (l > 0) blCount[l]!++;
  const next = new Array<number>(maxLen + 2).fill(0);
  let code = 0;
  for (let bits = 1; bits <= maxLen; bits++) {
    code = (code + blCount[bits - 1]!) << 1;
    next[bits] = code;
  }
  return lens.map((l) => (l > 0 ? next[l]!++ : 0));
}

/** Ensures at least two symbols get a code: inflaters are happiest with complete codes. */
function withTwoSymbols(freqs: readonly number[]): number[] {
  const out = freqs.slice();
  for (let s = 0; s < out.length && out.filter((f) => f > 0).length < 2; s++) if (out[s] === 0) out[s] = 1;
  return out;
}

/** LZ77 output as two parallel arrays. */
interface Tokens {
  /** literal byte (0..255) or match length (3..258) */
  value: number[];
  /** 0 for a literal, else the match distance */
  dist: number[];
}

function lz77(data: Uint8Array): Tokens {
  const n = data.length;
  const head = new Int32Array(HASH_SIZE).fill(-1);
  const prev = new Int32Array(n).fill(-1);
  const value: number[] = [];
  const dist: number[] = [];
  const hashAt = (i: number): number => ((data[i]! << 10) ^ (data[i + 1]! << 5) ^ data[i + 2]!) & (HASH_SIZE - 1);
  const insert = (i: number): void => {
    if (i + MIN_MATCH > n) return;
    const h = hashAt(i);
    prev[i] = head[h]!;
    head[h] = i;
  };
  const longest = (i: number): [number, number] => {
    if (i + MIN_MATCH > n) return [0, 0];
    let cand = head[hashAt(i)]!;
    let bestLen = 0;
    let bestDist = 0;
    const maxLen = Math.min(MAX_MATCH, n - i);
    for (let chain = 0; cand >= 0 && i - cand <= WINDOW && chain < MAX_CHAIN; chain++) {
      if (data[cand + bestLen] === data[i + bestLen]) {
        let len = 0;
        while (len < maxLen && data[cand + len] === data[i + len]) len++;
        if (len > bestLen) {
          bestLen = len;
          bestDist = i - cand;
          if (len >= NICE_MATCH || len === maxLen) break;
        }
      }
      cand = prev[cand]!;
    }
    return bestLen >= MIN_MATCH ? [bestLen, bestDist] : [0, 0];
  };

  let i = 0;
  while (i < n) {
    const [len, d] = longest(i);
    if (len === 0) {
      value.push(data[i]!);
      dist.push(0);
      insert(i);
      i++;
      continue;
    }
    // One-step lazy evaluation: if the next position starts a longer match, emit a literal here instead.
    insert(i);
    if (len < NICE_MATCH && i + 1 < n) {
      const [nextLen] = longest(i + 1);
      if (nextLen > len) {
        value.push(data[i]!);
        dist.push(0);
        i++;
        continue;
      }
    }
    value.push(len);
    dist.push(d);
    for (let k = 1; k < len; k++) insert(i + k);
    i += len;
  }
  return { value, dist };
}

function writeBlock(w: BitWriter, tokens: Tokens, start: number, end: number, final: boolean): void {
  const litFreq = new Array<number>(286).fill(0);
  const distFreq = new Array<number>(30).fill(0);
  for (let t = start; t < end; t++) {
    const d = tokens.dist[t]!;
    if (d === 0) litFreq[tokens.value[t]!]!++;
    else {
      litFreq[257 + LENGTH_CODE[tokens.value[t]!]!]!++;
      distFreq[distCode(d)]!++;
    }
  }
  litFreq[256] = 1;

  const litLens = huffmanLengths(withTwoSymbols(litFreq), 15);
  const distLens = huffmanLengths(withTwoSymbols(distFreq), 15);
  const litCodes = canonicalCodes(litLens);
  const distCodes = canonicalCodes(distLens);

  let hlit = 286;
  while (hlit > 257 && litLens[hlit - 1] === 0) hlit--;
  let hdist = 30;
  while (hdist > 1 && distLens[hdist - 1] === 0) hdist--;

  // Run-length encode the concatenated code lengths with symbols 16 (repeat previous), 17, 18 (repeat zero).
  const all = [...litLens.slice(0, hlit), ...distLens.slice(0, hdist)];
  const clSyms: number[] = [];
  const clExtra: number[] = [];
  for (let i = 0; i < all.length; ) {
    const l = all[i]!;
    let run = 1;
    while (i + run < all.length && all[i + run] === l) run++;
    if (l === 0 && run >= 3) {
      const r = Math.min(run, 138);
      if (r >= 11) { clSyms.push(18); clExtra.push(r - 11); } else { clSyms.push(17); clExtra.push(r - 3); }
      i += r;
    } else if (l !== 0 && run >= 4) {
      clSyms.push(l); clExtra.push(0);
      const r = Math.min(run - 1, 6);
      clSyms.push(16); clExtra.push(r - 3);
      i += 1 + r;
    } else {
      clSyms.push(l); clExtra.push(0);
      i += 1;
    }
  }
  const clFreq = new Array<number>(19).fill(0);
  for (const s of clSyms) clFreq[s]!++;
  const clLens = huffmanLengths(withTwoSymbols(clFreq), 7);
  const clCodes = canonicalCodes(clLens);
  let hclen = 19;
  while (hclen > 4 && clLens[CL_ORDER[hclen - 1]!] === 0) hclen--;

  w.bits(final ? 1 : 0, 1);
  w.bits(2, 2); // dynamic Huffman
  w.bits(hlit - 257, 5);
  w.bits(hdist - 1, 5);
  w.bits(hclen - 4, 4);
  for (let i = 0; i < hclen; i++) w.bits(clLens[CL_ORDER[i]!]!, 3);
  for (let i = 0; i < clSyms.length; i++) {
    const s = clSyms[i]!;
    w.code(clCodes[s]!, clLens[s]!);
    if (s === 16) w.bits(clExtra[i]!, 2);
    else if (s === 17) w.bits(clExtra[i]!, 3);
    else if (s === 18) w.bits(clExtra[i]!, 7);
  }

  for (let t = start; t < end; t++) {
    const d = tokens.dist[t]!;
    const v = tokens.value[t]!;
    if (d === 0) {
      w.code(litCodes[v]!, litLens[v]!);
      continue;
    }
    const lc = LENGTH_CODE[v]!;
    w.code(litCodes[257 + lc]!, litLens[257 + lc]!);
    if (LENGTH_EXTRA[lc]! > 0) w.bits(v - LENGTH_BASE[lc]!, LENGTH_EXTRA[lc]!);
    const dc = distCode(d);
    w.code(distCodes[dc]!, distLens[dc]!);
    if (DIST_EXTRA[dc]! > 0) w.bits(d - DIST_BASE[dc]!, DIST_EXTRA[dc]!);
  }
  w.code(litCodes[256]!, litLens[256]!);
}

/** Raw DEFLATE stream of `data`. */
export function deflateRaw(data: Uint8Array): Uint8Array {
  const tokens = lz77(data);
  const w = new BitWriter();
  const count = tokens.value.length;
  if (count === 0) writeBlock(w, tokens, 0, 0, true);
  for (let start = 0; start < count; start += BLOCK_TOKENS) {
    const end = Math.min(count, start + BLOCK_TOKENS);
    writeBlock(w, tokens, start, end, end === count);
  }
  return Uint8Array.from(w.finish());
}

export function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; ) {
    const end = Math.min(data.length, i + 5552);
    for (; i < end; i++) {
      a += data[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** zlib stream (2-byte header, DEFLATE data, Adler-32), as PNG's IDAT wants. */
export function zlibDeflate(data: Uint8Array): Uint8Array {
  const body = deflateRaw(data);
  const out = new Uint8Array(body.length + 6);
  out[0] = 0x78; // CM 8, 32K window
  out[1] = 0xda; // FLEVEL 3 (maximum compression); 0x78da is a multiple of 31
  out.set(body, 2);
  const sum = adler32(data);
  out[out.length - 4] = sum >>> 24;
  out[out.length - 3] = (sum >>> 16) & 0xff;
  out[out.length - 2] = (sum >>> 8) & 0xff;
  out[out.length - 1] = sum & 0xff;
  return out;
}
