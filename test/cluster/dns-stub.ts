/**
 * A DNS server on loopback UDP that answers A queries from a table the test changes: what
 * Swarm's embedded DNS does for `tasks.<service>`. Real packets (RFC 1035 §4), so the code under
 * test resolves through node:dns as it does on a Swarm.
 */
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';

export interface DnsStub {
  /** `127.0.0.1:PORT`, for Resolver.setServers. */
  server: string;
  /** Sets the A records of a name; an empty list answers none (ENODATA), a name never set NXDOMAIN. */
  set(name: string, addresses: string[]): void;
  /** How many queries for `name` arrived. */
  queries(name: string): number;
  close(): Promise<void>;
}

/** The question's name and where the question ends, or undefined for a packet we do not answer. */
function readQuestion(msg: Buffer): { name: string; end: number; type: number } | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < msg.length) {
    const len = msg[at]!;
    if (len === 0) break;
    if (len > 63) return undefined; // compression never appears in a question we send
    labels.push(msg.subarray(at + 1, at + 1 + len).toString('ascii'));
    at += 1 + len;
  }
  if (at + 5 > msg.length) return undefined;
  return { name: labels.join('.').toLowerCase(), end: at + 5, type: msg.readUInt16BE(at + 1) };
}

export async function startDnsStub(): Promise<DnsStub> {
  const records = new Map<string, string[]>();
  const asked = new Map<string, number>();
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    const q = readQuestion(msg);
    if (!q) return;
    asked.set(q.name, (asked.get(q.name) ?? 0) + 1);
    const addresses = q.type === 1 ? (records.get(q.name) ?? []) : [];
    const known = records.has(q.name);
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // the id
    header.writeUInt16BE(known ? 0x8180 : 0x8183, 2); // a response, recursion available; NXDOMAIN when unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(addresses.length, 6);
    const answers = addresses.map((a) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(0, 6); // TTL 0: ask again every time, as Swarm's answers are meant
      rr.writeUInt16BE(4, 10);
      a.split('.').forEach((octet, i) => rr.writeUInt8(Number(octet), 12 + i));
      return rr;
    });
    socket.send(Buffer.concat([header, msg.subarray(12, q.end), ...answers]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  const { port } = socket.address() as AddressInfo;
  return {
    server: `127.0.0.1:${port}`,
    set: (name, addresses) => void records.set(name.toLowerCase(), addresses),
    queries: (name) => asked.get(name.toLowerCase()) ?? 0,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
