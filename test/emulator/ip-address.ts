// Just enough of Go's net/netip for the Host check: Ollama classifies the Host header with
// netip.ParseAddr and Addr.IsLoopback/IsPrivate/IsUnspecified, so the emulator must accept and
// reject exactly the same spellings (no brackets, no leading zeros in IPv4, optional IPv6 zone).

export interface IpAddress {
  readonly version: 4 | 6;
  /** 4 bytes for IPv4, 16 for IPv6. */
  readonly bytes: readonly number[];
  readonly zone?: string;
}

function parseIPv4Bytes(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes: number[] = [];
  for (const part of parts) {
    // Go rejects "01" ("IPv4 field has octet with leading zero"), as does this.
    if (!/^\d{1,3}$/.test(part) || (part.length > 1 && part.startsWith('0'))) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes.push(value);
  }
  return bytes;
}

function parseIPv6Bytes(text: string): number[] | undefined {
  let body = text;
  // An embedded IPv4 tail (::ffff:127.0.0.1) becomes two hex groups.
  if (body.includes('.')) {
    const lastColon = body.lastIndexOf(':');
    if (lastColon < 0) return undefined;
    const v4 = parseIPv4Bytes(body.slice(lastColon + 1));
    if (!v4) return undefined;
    const [a = 0, b = 0, c = 0, d = 0] = v4;
    body = `${body.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const group = /^[0-9a-fA-F]{1,4}$/;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  if (![...head, ...tail].every((g) => group.test(g))) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  const bytes: number[] = [];
  for (const g of groups) {
    const value = parseInt(g, 16);
    bytes.push(value >> 8, value & 0xff);
  }
  return bytes;
}

/** Go's netip.ParseAddr: undefined where Go returns an error. */
export function parseIp(text: string): IpAddress | undefined {
  if (text.includes(':')) {
    const zoneAt = text.indexOf('%');
    const zone = zoneAt >= 0 ? text.slice(zoneAt + 1) : undefined;
    if (zone === '') return undefined;
    const bytes = parseIPv6Bytes(zoneAt >= 0 ? text.slice(0, zoneAt) : text);
    if (!bytes) return undefined;
    return zone === undefined ? { version: 6, bytes } : { version: 6, bytes, zone };
  }
  const bytes = parseIPv4Bytes(text);
  return bytes ? { version: 4, bytes } : undefined;
}

/** ::ffff:a.b.c.d seen as a.b.c.d, as netip's classifiers do before testing. */
function unmap(ip: IpAddress): IpAddress {
  if (ip.version !== 6) return ip;
  const b = ip.bytes;
  const mapped = b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? { version: 4, bytes: b.slice(12) } : ip;
}

export function isLoopback(ip: IpAddress): boolean {
  const u = unmap(ip);
  if (u.version === 4) return u.bytes[0] === 127;
  return u.bytes.slice(0, 15).every((x) => x === 0) && u.bytes[15] === 1;
}

/** RFC 1918 and RFC 4193 only: link-local (169.254/16, fe80::/10) and CGNAT (100.64/10) are not private. */
export function isPrivate(ip: IpAddress): boolean {
  const u = unmap(ip);
  const [a = 0, b = 0] = u.bytes;
  if (u.version === 4) return a === 10 || (a === 172 && (b & 0xf0) === 16) || (a === 192 && b === 168);
  return (a & 0xfe) === 0xfc;
}

/** 0.0.0.0 or :: exactly (netip does not unmap here). */
export function isUnspecified(ip: IpAddress): boolean {
  return ip.bytes.every((x) => x === 0) && ip.zone === undefined;
}

/** Same family, bytes and zone: Go compares the String() forms. */
export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.version === b.version && a.zone === b.zone && a.bytes.every((x, i) => x === b.bytes[i]);
}
