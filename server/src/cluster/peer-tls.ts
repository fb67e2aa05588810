/**
 * The TLS of the hop between api-backends: mutual, from one CA per stack (made by
 * scripts/deploy/make-cluster-ca.sh, handed to each task as Docker secrets). On this machine's
 * kernel an `--opt encrypted` overlay passes nothing (shared/ENVIRONMENT.md), and a plain overlay
 * is readable by anything attached to it, so the api-backends authenticate and encrypt the hop
 * themselves. Any certificate the stack's CA signed is a peer: the CA is the stack's own and
 * signs nothing else, and tasks' addresses change with every reschedule, so names are not checked.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface PeerTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface PeerTls {
  /** Options of the peer listener: a client certificate from the stack's CA is required. */
  server: https.ServerOptions;
  /** The agent this node reaches its peers with, presenting its own certificate. */
  agent: https.Agent;
}

function readPem(path: string, what: string, variable: string): Buffer {
  let pem: Buffer;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- a path from the server's configuration
    pem = readFileSync(path);
  } catch (e) {
    throw new Error(`${variable}: cannot read the ${what} at ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!pem.includes('-----BEGIN ')) throw new Error(`${variable}: ${path} is not a PEM file (the ${what} was expected)`);
  return pem;
}

export function loadPeerTls(files: PeerTlsFiles): PeerTls {
  const ca = readPem(files.ca, "stack's CA certificate", 'CTLL_CLUSTER_TLS_CA');
  const cert = readPem(files.cert, "node's certificate", 'CTLL_CLUSTER_TLS_CERT');
  const key = readPem(files.key, "node's private key", 'CTLL_CLUSTER_TLS_KEY');
  const common = { ca, cert, key, minVersion: 'TLSv1.3' as const };
  return {
    server: { ...common, requestCert: true, rejectUnauthorized: true },
    agent: new https.Agent({
      ...common,
      keepAlive: true,
      maxSockets: Infinity,
      scheduling: 'lifo',
      // The chain to the stack's CA is the check (above); a task's address is not in its certificate.
      checkServerIdentity: () => undefined,
    }),
  };
}

/** True when the connection presented a certificate the stack's CA signed. */
export function isAuthenticatedPeer(socket: unknown): boolean {
  return (socket as Partial<TLSSocket>).authorized === true && (socket as TLSSocket).encrypted === true;
}
