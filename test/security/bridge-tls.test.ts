/**
 * The bridge verifies the cloud's certificate and says what is wrong with it. A real streaming
 * proxy sits behind a TLS terminator (Node's tls server, as nginx would be) serving certificates
 * made with openssl for each case; the bridge CLI, as users run it, dials wss://localhost and
 * reports its status as JSON lines. Each refusal must name the problem, and the bridge must not
 * have sent a byte over the connection it refused (its token goes in the first request).
 *
 * Skipped without openssl, except in CI (CI=true), where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { BRIDGE_PATH } from '@cloudtolocalllm/bridge/connection/protocol';
import type { BridgeStatus } from '@cloudtolocalllm/bridge/supervisor/status';
import { StaticTokenAuthenticator } from '@cloudtolocalllm/server/proxy/auth';
import { StreamingProxy } from '@cloudtolocalllm/server/proxy/streaming-proxy';
import { IN_CI, onJsonLines, ROOT, selfSignedCertificate, which } from '../deploy/deploy-harness.js';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { issue, makeCa, type IssuedCertificate, type TestCa } from './test-certificates.js';

const missing = which('openssl') ? '' : 'openssl';
if (missing && IN_CI) test('openssl is installed (CI machines must have it)', () => assert.fail('missing: openssl'));
const skip = missing ? 'missing on this machine: openssl; CI=true makes this a failure' : false;

/** A TLS terminator in front of the proxy; counts the plaintext bytes clients sent through it. */
class Terminator {
  private readonly server: tls.Server;
  plaintextBytes = 0;
  port = 0;
  constructor(upstreamPort: number) {
    this.server = tls.createServer({}, (socket) => {
      const upstream = net.connect(upstreamPort, '127.0.0.1');
      socket.on('data', (c: Buffer) => (this.plaintextBytes += c.length));
      socket.pipe(upstream).pipe(socket);
      const end = (): void => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    // Handshakes the client aborts (its verification failed) are the point of these tests.
    this.server.on('tlsClientError', () => {});
  }
  /** Serves `chain` (leaf first) with `key` from now on, counting afresh. */
  serve(chain: string, key: string): void {
    this.server.setSecureContext({ cert: chain, key });
    this.plaintextBytes = 0;
  }
  listen(): Promise<number> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.port = (this.server.address() as net.AddressInfo).port))));
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Runs the bridge CLI until its first `connected` or `error` status (then `whileConnected`, if connected), then stops it. */
async function bridgeOutcome(options: { port: number; token: string; ollamaUrl: string; caFile?: string; whileConnected?: () => Promise<void> }): Promise<BridgeStatus> {
  const env: NodeJS.ProcessEnv = { ...process.env, CLOUDTOLOCALLLM_TOKEN: options.token };
  delete env['NODE_EXTRA_CA_CERTS'];
  const child = spawn(
    process.execPath,
    [
      '--import', 'tsx', 'bridge/cli.ts', '--json',
      '--proxy-url', `wss://localhost:${options.port}${BRIDGE_PATH}`,
      '--ollama-url', options.ollamaUrl,
      ...(options.caFile ? ['--ca-file', options.caFile] : []),
    ],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const status = await new Promise<BridgeStatus>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the bridge reported neither connected nor an error within 60 s:\n${output}`)), 60_000);
      child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
      onJsonLines(child.stdout!, (event) => {
        if (event['event'] === 'status' && (event['state'] === 'connected' || event['state'] === 'error')) {
          clearTimeout(timer);
          resolve(event as unknown as BridgeStatus);
        }
      });
      child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the bridge exited (code ${code}) before reporting:\n${output}`));
      });
    });
    if (status.state === 'connected') await options.whileConnected?.();
    return status;
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

describe('the bridge refuses a wss:// endpoint whose certificate does not verify, and says why', { skip, concurrency: false }, () => {
  let dir: string;
  let ca: TestCa;
  let emulator: OllamaEmulator;
  let proxy: StreamingProxy;
  let proxyUrl: string;
  let terminator: Terminator;
  const token = randomBytes(24).toString('base64url');
  let good: IssuedCertificate;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctll-bridge-tls-'));
    ca = await makeCa(join(dir, 'ca'));
    good = await issue(ca, 'localhost', 'localhost');
    emulator = new OllamaEmulator();
    await emulator.start();
    proxy = new StreamingProxy({ authenticator: new StaticTokenAuthenticator('tls-user', token) });
    proxyUrl = await proxy.listen();
    terminator = new Terminator(Number(new URL(proxyUrl).port));
    await terminator.listen();
  });

  after(async () => {
    await terminator?.close();
    await proxy?.close();
    await emulator?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const refused = async (caFile: string | undefined, pattern: RegExp, code: string): Promise<void> => {
    const status = await bridgeOutcome({ port: terminator.port, token, ollamaUrl: emulator.url, ...(caFile ? { caFile } : {}) });
    assert.equal(status.state, 'error', JSON.stringify(status));
    assert.equal(status.code, 'certificate', JSON.stringify(status));
    assert.match(status.reason ?? '', pattern);
    assert.ok(status.reason?.endsWith(`(${code})`), `the reason names ${code}: ${status.reason}`);
    assert.ok(status.retryInMs !== undefined, 'a certificate problem is retried (its operator may fix it)');
    assert.equal(terminator.plaintextBytes, 0, 'the bridge sent data (its token) over a connection it did not trust');
    assert.equal(proxy.links.connected, false);
  };

  test('a certificate for another name: refused, naming the names (even with its CA trusted)', async () => {
    const other = await issue(ca, 'other', 'other.example');
    terminator.serve(other.pem, other.keyPem);
    await refused(ca.cert, /certificate is for another name \(Host: localhost\. is not in the cert's altnames: DNS:other\.example\)/, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });

  test('an expired certificate: refused as expired (even with its CA trusted)', async () => {
    const expired = await issue(ca, 'expired', 'localhost', { start: new Date('2020-01-01T00:00:00Z'), end: new Date('2020-01-02T00:00:00Z') });
    terminator.serve(expired.pem, expired.keyPem);
    await refused(ca.cert, /certificate has expired/, 'CERT_HAS_EXPIRED');
  });

  test('a certificate not valid yet: refused, pointing at the clock', async () => {
    const future = await issue(ca, 'future', 'localhost', { start: new Date(Date.now() + 86_400_000), end: new Date(Date.now() + 3 * 86_400_000) });
    terminator.serve(future.pem, future.keyPem);
    await refused(ca.cert, /not valid yet: check this computer's clock/, 'CERT_NOT_YET_VALID');
  });

  test('a self-signed certificate without --ca-file: refused as self-signed, with the way to trust it', async () => {
    const self = await selfSignedCertificate(join(dir, 'self'));
    terminator.serve(readFileSync(self.cert, 'utf8'), readFileSync(self.key, 'utf8'));
    await refused(undefined, /self-signed and this computer does not trust it: .*--ca-file FILE/, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  test('a certificate from a CA this computer does not trust: refused as an unknown CA (leaf only, and with the CA in the chain)', async () => {
    terminator.serve(good.pem, good.keyPem);
    await refused(undefined, /issued by a certificate authority this computer does not trust: .*the CA's certificate \(bridge CLI: --ca-file FILE/, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    terminator.serve(good.pem + ca.pem, good.keyPem);
    await refused(undefined, /issued by a certificate authority this computer does not trust/, 'SELF_SIGNED_CERT_IN_CHAIN');
  });

  test('with --ca-file naming the CA, the same certificate is trusted: the bridge connects and requests pass', async () => {
    terminator.serve(good.pem, good.keyPem);
    let version: { status: number; body: unknown } | undefined;
    const status = await bridgeOutcome({
      port: terminator.port,
      token,
      ollamaUrl: emulator.url,
      caFile: ca.cert,
      whileConnected: async () => {
        const res = await fetch(`${proxyUrl}/api/version`, { headers: { authorization: `Bearer ${token}` } });
        version = { status: res.status, body: await res.json() };
      },
    });
    assert.equal(status.state, 'connected', JSON.stringify(status));
    assert.equal(version?.status, 200, JSON.stringify(version));
    assert.equal(typeof (version?.body as { version?: unknown }).version, 'string');
    assert.ok(terminator.plaintextBytes > 0);
  });

  test('with --ca-file naming a self-signed certificate, that certificate is trusted', async () => {
    const self = await selfSignedCertificate(join(dir, 'self2'));
    terminator.serve(readFileSync(self.cert, 'utf8'), readFileSync(self.key, 'utf8'));
    const status = await bridgeOutcome({ port: terminator.port, token, ollamaUrl: emulator.url, caFile: self.cert });
    assert.equal(status.state, 'connected', JSON.stringify(status));
  });
});
