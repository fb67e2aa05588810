/**
 * The tunnel's wire contract, shared by the bridge (desktop) and the streaming proxy (cloud).
 *
 * The bridge dials the proxy with a WebSocket; over that WebSocket runs plain HTTP/2 (RFC 9113),
 * the proxy being the HTTP/2 client and the bridge the server, as cloudflared does over the
 * connection its connector dials out. Everything a relayed request needs (multiplexing,
 * per-stream flow control, cancellation with RST_STREAM) is HTTP/2's own, so this file only
 * pins what HTTP/2 leaves open: which version of this contract each side speaks, and where.
 */

import packageJson from '../package.json' with { type: 'json' };

const BRIDGE_VERSION: string = packageJson.version;

/** Bumped whenever either side would misunderstand the other. */
export const TUNNEL_PROTOCOL_VERSION = 1;

/** Offered as the WebSocket subprotocol (RFC 6455 §1.9): `cloudtolocalllm.tunnel.v1`. */
export const TUNNEL_SUBPROTOCOL_PREFIX = 'cloudtolocalllm.tunnel.v';

export function subprotocolFor(version: number): string {
  return `${TUNNEL_SUBPROTOCOL_PREFIX}${version}`;
}

/** The version a subprotocol names, or undefined when it is not one of ours. */
export function versionOf(subprotocol: string): number | undefined {
  if (!subprotocol.startsWith(TUNNEL_SUBPROTOCOL_PREFIX)) return undefined;
  const digits = subprotocol.slice(TUNNEL_SUBPROTOCOL_PREFIX.length);
  if (!/^[1-9][0-9]{0,5}$/.test(digits)) return undefined;
  return Number(digits);
}

/**
 * How the tunnel's HTTP/2 travels (issue 12). `h2`: the bridge's HTTP/1.1 request is upgraded to
 * `Upgrade: cloudtolocalllm-h2/1` and HTTP/2 then runs straight on the TCP or TLS socket, read and
 * written by Node's native HTTP/2 (no WebSocket framing, no JavaScript stream in between).
 * `websocket`: HTTP/2 inside WebSocket messages, for a proxy or middlebox that takes only WebSocket.
 */
export type TunnelTransport = 'h2' | 'websocket';

/** The upgrade token of the `h2` transport; `/N` is the contract's version, as the subprotocol's `vN`. */
export const H2_UPGRADE_PREFIX = 'cloudtolocalllm-h2/';

export function h2UpgradeFor(version: number): string {
  return `${H2_UPGRADE_PREFIX}${version}`;
}

/**
 * What an `Upgrade` header asks for: one of our two transports and, for `h2`, the versions it
 * names (RFC 9110 §7.8: a comma-separated list, case-insensitive); undefined for anything else.
 */
export function tunnelUpgradeOf(header: string | undefined): { transport: TunnelTransport; versions: number[] } | undefined {
  const tokens = String(header ?? '')
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  const versions = tokens.flatMap((t) => {
    if (!t.startsWith(H2_UPGRADE_PREFIX)) return [];
    const v = versionOf(`${TUNNEL_SUBPROTOCOL_PREFIX}${t.slice(H2_UPGRADE_PREFIX.length)}`);
    return v === undefined ? [] : [v];
  });
  if (tokens.some((t) => t.startsWith(H2_UPGRADE_PREFIX))) return { transport: 'h2', versions };
  if (tokens.includes('websocket')) return { transport: 'websocket', versions: [] };
  return undefined;
}

/**
 * On the `h2` transport a close code and its reason travel as the debug data of an HTTP/2 GOAWAY
 * (RFC 9113 §6.8), which either end may send: "4001 replaced by ...", as a WebSocket close frame
 * would carry them.
 */
export function goawayData(code: number, reason: string): Uint8Array {
  return new TextEncoder().encode(`${code} ${reason}`.slice(0, 200));
}

export function parseGoawayData(data: Uint8Array | undefined): { code: number; reason: string } | undefined {
  const m = /^([0-9]{4}) ([\s\S]*)$/.exec(data ? new TextDecoder().decode(data) : '');
  return m ? { code: Number(m[1]), reason: m[2]! } : undefined;
}

/** Path on the proxy where the bridge's WebSocket is accepted. */
export const BRIDGE_PATH = '/bridge';

/**
 * The `:authority` the proxy sends on every relayed request. It names no real host: the bridge
 * alone decides which Ollama URL it talks to, and refuses any other authority.
 */
export const TUNNEL_AUTHORITY = 'ollama.tunnel';

/**
 * Close codes the two sides use to explain why they hung up (4000-4999 are WebSocket's private
 * range; on the `h2` transport they travel in GOAWAY, goawayData).
 */
export const CloseCode = {
  /** Another bridge of the same user connected; this one must not reconnect on its own. */
  Replaced: 4001,
  /** The proxy is shutting down; reconnect with backoff. */
  ProxyStopping: 4002,
  /** Heartbeats went unanswered. */
  HeartbeatTimeout: 4003,
  /** The credential the tunnel was opened with expired and was not renewed; reconnect with a fresh one. */
  CredentialExpired: 4004,
  /**
   * The cloud's members changed and another api-backend owns this account now (docs/scaling.md):
   * reconnect at once; the new connection lands on the new owner, whichever node it reaches.
   */
  OwnerMoved: 4005,
  /** The peer spoke something that is not valid HTTP/2 (WebSocket's 1002, protocol error). */
  ProtocolError: 1002,
} as const;

/**
 * Headers of the tunnel's lifetime (docs/tunnel.md, "Credentials"). On the upgrade the
 * api-backend tells the proxy (with the proxy's secret, so a bridge cannot set them) when the
 * verified credential expires and which address the bridge connected from; the proxy's 101
 * answer names the tunnel and its deadline, which the bridge extends through the api-backend.
 */
export const CREDENTIAL_EXPIRES_HEADER = 'x-cloudtolocalllm-credential-expires';
export const CLIENT_ADDRESS_HEADER = 'x-cloudtolocalllm-client-address';
export const TUNNEL_ID_HEADER = 'x-cloudtolocalllm-tunnel';
export const TUNNEL_EXPIRES_HEADER = 'x-cloudtolocalllm-tunnel-expires';

/** Where a bridge renews its tunnel's credential, beside the cloud server's /ws/bridge. */
export const RENEW_PATH = '/api/tunnel/renew';
/** The proxy's own endpoint for it (reached by the api-backend only). */
export const PROXY_RENEW_PATH = '/tunnel/renew';
/** The proxy's list of the user's connected computers (reached by the api-backend only, issue 10). */
export const PROXY_COMPUTERS_PATH = '/computers';

/** The close reason of a replaced bridge: who replaced it, readable by people and by the bridge. */
export function replacedReason(address: string, at: number): string {
  return `replaced by ${address} at ${new Date(at).toISOString()}`;
}

export function parseReplacedReason(reason: string): { address: string; at: number } | undefined {
  const m = /^replaced by (\S+) at (\S+)$/.exec(reason);
  const at = m ? Date.parse(m[2]!) : NaN;
  return m && Number.isFinite(at) ? { address: m[1]!, at } : undefined;
}

/** The bridge's User-Agent: what the audit log records as the client of a bridge connection. */
export const BRIDGE_USER_AGENT = `CloudToLocalLLM-bridge/${BRIDGE_VERSION} (tunnel v${TUNNEL_PROTOCOL_VERSION})`;

/** HTTP status the proxy answers a bridge speaking another protocol version with. */
export const UPDATE_REQUIRED_STATUS = 426;

/** Header carrying a short machine-readable reason on refusals (besides the JSON body). */
export const REFUSAL_HEADER = 'x-cloudtolocalllm-refusal';

/**
 * Trailer the bridge sends after the last byte of every response it completes. HTTP/2 alone
 * cannot tell "the response ended" from "the tunnel was torn down" on every code path (Node
 * ends a stream's readable side when its session is destroyed), so the proxy treats a body
 * without this trailer as broken, as gRPC treats a stream without its status trailer.
 */
export const COMPLETE_TRAILER = 'x-cloudtolocalllm-complete';

/**
 * Several computers on one endpoint (issue 10). The bridge names its computer on the upgrade
 * with this header; a client names one on a request with the same header to pin it there.
 */
export const MACHINE_HEADER = 'x-cloudtolocalllm-machine';
/** The name a bridge that sends none (an older one) is known by. */
export const DEFAULT_MACHINE_NAME = 'default';
/**
 * Set by the api-backend on the upgrade (with the proxy's secret, like the address): how many
 * computers of this user may be connected at once (its CTLL_MAX_BRIDGES).
 */
export const MAX_MACHINES_HEADER = 'x-cloudtolocalllm-max-machines';
/**
 * Set to 1 by nginx on an upgrade it sends straight to the proxy (docs/edge-routing.md), with the
 * proxy's secret: the api-backend counts that tunnel from the proxy's link events, having no
 * socket of it. nginx sets it on every such upgrade, so a bridge's own value never arrives.
 */
export const EDGE_TUNNEL_HEADER = 'x-cloudtolocalllm-edge-tunnel';
export const MAX_MACHINE_NAME_LENGTH = 63;

/**
 * A computer's name as the cloud shows it and clients pin it: 1 to 63 letters, digits, dots,
 * hyphens and underscores, starting with a letter or digit (a host name fits; nothing that
 * could break a header, a log line or the web page). Returns the problem, or undefined.
 */
export function machineNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the computer name is empty';
  if (name.length > MAX_MACHINE_NAME_LENGTH) return `the computer name is ${name.length} characters long; at most ${MAX_MACHINE_NAME_LENGTH} are allowed`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    return `the computer name "${name.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_MACHINE_NAME_LENGTH)}" may hold only letters, digits, ".", "-" and "_", and must start with a letter or digit`;
  }
  return undefined;
}

/** A default name from the host name: the first label, with what the rule forbids replaced. */
export function machineNameFromHost(hostname: string): string {
  const cleaned = hostname.split('.')[0]!.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, MAX_MACHINE_NAME_LENGTH);
  return cleaned || DEFAULT_MACHINE_NAME;
}
