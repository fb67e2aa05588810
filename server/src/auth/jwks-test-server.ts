/**
 * Test fixture: a stand-in for an Auth0 tenant on 127.0.0.1 that publishes a JWKS at
 * <issuer>.well-known/jwks.json, counts how often it is fetched, and can misbehave on demand.
 * Plus helpers to make keys and sign tokens with them. Used only by the *.test.ts files here.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';

export interface TestKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The public key as the JWKS publishes it: with `kid` and `use`, without `alg`, so only the verifier's own algorithm list keeps other algorithms out. */
  publicJwk: JWK;
}

export async function makeKey(kid: string, alg: 'RS256' | 'ES256' = 'RS256'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, use: 'sig' };
  return { kid, alg, privateKey, publicKey, publicJwk };
}

/** How the JWKS endpoint answers: normally, with a 500, with a body that is not JSON, or never. */
export type JwksMode = 'ok' | 'error' | 'not-json' | 'hang';

export interface JwksTestServer {
  /** 'http://127.0.0.1:<port>/', the issuer whose keys this server publishes. */
  issuer: string;
  jwksUri: string;
  /** How many times the JWKS has been requested. */
  hits: number;
  mode: JwksMode;
  publish(keys: readonly TestKey[]): void;
  close(): Promise<void>;
}

export async function startJwksServer(keys: readonly TestKey[]): Promise<JwksTestServer> {
  let published = keys.map((k) => k.publicJwk);
  const server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    state.hits += 1;
    if (state.mode === 'hang') return;
    if (state.mode === 'error') {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(state.mode === 'not-json' ? '<html>maintenance</html>' : JSON.stringify({ keys: published }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}/`;
  const state: JwksTestServer = {
    issuer,
    jwksUri: `${issuer}.well-known/jwks.json`,
    hits: 0,
    mode: 'ok',
    publish(next) {
      published = next.map((k) => k.publicJwk);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return state;
}

/** A loopback URL nothing listens on, for "the issuer is down". */
export async function unusedLoopbackUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/`;
}

export const nowSec = (): number => Math.floor(Date.now() / 1000);

/** Signs `claims` with `key`; `header` overrides the protected header (e.g. another `kid`). */
export function signToken(key: TestKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header }).sign(key.privateKey);
}

export const b64json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
