/**
 * IPv4 addresses and CIDR blocks as plain numbers: just enough arithmetic for the subnet
 * allocator (parse, format, overlap). Addresses are unsigned 32-bit values held in ordinary JS
 * numbers; no bitwise operators, because those work on *signed* 32-bit integers and would turn
 * 128.0.0.0 and above negative.
 */

export interface Cidr {
  /** The network address (host bits zero), 0 .. 2^32-1. */
  readonly network: number;
  /** Prefix length, 0 .. 32. */
  readonly prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIpv4(text: string): number {
  const m = IPV4.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not an IPv4 address (expected four numbers like 10.200.0.1)`);
  let value = 0;
  for (const part of m.slice(1)) {
    const octet = Number(part);
    if (octet > 255) throw new Error(`"${text}" is not an IPv4 address: ${part} is larger than 255`);
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`${value} is not an IPv4 address value`);
  return [value / 2 ** 24, value / 2 ** 16, value / 2 ** 8, value].map((v) => Math.floor(v) % 256).join('.');
}

/** Number of addresses in a block of this prefix length. */
export function blockSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

/**
 * Parses "a.b.c.d/n". Strict by default: host bits must be zero, because "10.200.1.0/16" is
 * almost always a typo and silently widening it would hand out subnets the admin did not mean.
 * `strict: false` masks them instead (for reading other software's networks, which we must
 * account for whatever they look like).
 */
export function parseCidr(text: string, options: { strict?: boolean } = {}): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  if (slash < 0) throw new Error(`"${text}" is not an IPv4 CIDR block (expected an address and a prefix length, like 10.200.0.0/16)`);
  const address = parseIpv4(trimmed.slice(0, slash));
  const prefixText = trimmed.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,2}$/.test(prefixText) || prefix > 32) {
    throw new Error(`"${text}" has an invalid prefix length "/${prefixText}" (expected 0 to 32)`);
  }
  const size = blockSize(prefix);
  const network = Math.floor(address / size) * size;
  if (network !== address && options.strict !== false) {
    throw new Error(
      `"${text}" has host bits set: the block containing ${formatIpv4(address)} is ${formatIpv4(network)}/${prefix}`,
    );
  }
  return { network, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefix}`;
}

/** One past the last address of the block. */
export function cidrEnd(cidr: Cidr): number {
  return cidr.network + blockSize(cidr.prefix);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.network < cidrEnd(b) && b.network < cidrEnd(a);
}

/** The address `offset` places into the block (1 = the first host address). */
export function addressAt(cidr: Cidr, offset: number): string {
  if (offset < 0 || offset >= blockSize(cidr.prefix)) throw new Error(`offset ${offset} is outside ${formatCidr(cidr)}`);
  return formatIpv4(cidr.network + offset);
}
