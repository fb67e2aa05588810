/**
 * Helpers of the deployment tests: host tools, free ports, a self-signed certificate, the
 * project's nginx configuration rendered with test ports and run by the host's nginx, the bridge
 * CLI in a child process that trusts that certificate, and HTTPS clients that record when each
 * streamed line arrived.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const run = promisify(execFile);
export const IN_CI = process.env['CI'] === 'true';

/** The absolute path of a command on PATH (or in the sbin folders a user's PATH may lack). */
export function which(command: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  return undefined;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

export async function selfSignedCertificate(dir: string, name = 'localhost'): Promise<{ cert: string; key: string }> {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, 'fullchain.pem');
  const key = join(dir, 'privkey.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`, '-keyout', key, '-out', cert,
  ]);
  return { cert, key };
}

export interface NginxPorts {
  https: number;
  http: number;
  health: number;
}

/** Renders server/deploy/nginx with scripts/deploy/render-nginx-conf.sh for a run on this host. */
export async function renderNginx(
  dir: string,
  options: { ports: NginxPorts; upstreamPort: number; edgePort?: number; cert: string; key: string; acmeRoot: string; extra?: string[] },
): Promise<{ confDir: string; runDir: string; conf: string }> {
  const confDir = join(dir, 'conf');
  const runDir = join(dir, 'run');
  mkdirSync(runDir, { recursive: true });
  mkdirSync(options.acmeRoot, { recursive: true });
  await run(join(ROOT, 'scripts/deploy/render-nginx-conf.sh'), [
    '--out', confDir,
    '--server-name', 'localhost',
    '--https-port', String(options.ports.https),
    '--http-port', String(options.ports.http),
    '--health-port', String(options.ports.health),
    '--listen', '127.0.0.1',
    '--upstream', `127.0.0.1:${options.upstreamPort}`,
    ...(options.edgePort !== undefined ? ['--edge-upstream', `127.0.0.1:${options.edgePort}`] : []),
    '--tls-cert', options.cert,
    '--tls-key', options.key,
    '--acme-root', options.acmeRoot,
    '--run-dir', runDir,
    '--error-log', join(runDir, 'error.log'),
    '--access-log', join(runDir, 'access.log'),
    // Root starts the master; the workers drop to nobody, as the image's drop to nginx.
    '--worker-user', 'nobody nogroup',
    ...(options.extra ?? []),
  ]);
  return { confDir, runDir, conf: join(confDir, 'nginx.conf') };
}

export interface RunningNginx {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** `nginx -p <run> -c <conf> -g 'daemon off;'` as a child; resolves once its health port answers. */
export async function startNginx(nginx: string, rendered: { conf: string; runDir: string }, healthPort: number): Promise<RunningNginx> {
  const child = spawn(nginx, ['-p', rendered.runDir, '-c', rendered.conf, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  // nginx finishes its requests on SIGQUIT (a graceful stop).
  const stop = (): Promise<void> => stopChild(child, 'SIGQUIT', 5000);
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with code ${child.exitCode}:\n${out}`);
    const ok = await new Promise<boolean>((resolve) => {
      http
        .get({ host: '127.0.0.1', port: healthPort, path: '/nginx-health', agent: false, timeout: 1000 }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        })
        .on('error', () => resolve(false))
        .on('timeout', function (this: http.ClientRequest) {
          this.destroy();
        });
    });
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not answer on its health port within 15 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, output: () => out, stop };
}

export interface BridgeProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * The bridge CLI (bridge/cli.ts) in a child process, connected through nginx. The Bridge has no
 * option for a CA, so the child trusts the test certificate through NODE_EXTRA_CA_CERTS, exactly
 * as a user of a self-signed trial would. Resolves once it reports `connected`.
 */
export async function startBridgeProcess(options: {
  proxyUrl: string;
  token: string;
  ollamaUrl: string;
  caFile: string;
  allow?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}): Promise<BridgeProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'bridge/cli.ts', '--proxy-url', options.proxyUrl, '--ollama-url', options.ollamaUrl, '--json', ...(options.allow ? ['--allow', options.allow] : [])],
    {
      cwd: ROOT,
      env: { ...process.env, ...options.env, CLOUDTOLOCALLLM_TOKEN: options.token, NODE_EXTRA_CA_CERTS: options.caFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const stop = (): Promise<void> => stopChild(child, 'SIGTERM', 5000);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`the bridge did not connect within ${(options.timeoutMs ?? 60_000) / 1000} s:\n${out}`));
    }, options.timeoutMs ?? 60_000);
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    onJsonLines(child.stdout!, (event) => {
      if (event['event'] === 'status' && event['state'] === 'connected') {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the bridge exited (code ${code}) before connecting:\n${out}`));
    });
  });
  return { child, output: () => out, stop };
}

/** Calls `onEvent` with each line of `stream` that is a JSON object (the bridge CLI's `--json` events); other lines are skipped. */
export function onJsonLines(stream: NodeJS.ReadableStream, onEvent: (event: Record<string, unknown>) => void): void {
  let buffer = '';
  stream.on('data', (c: Buffer | string) => {
    buffer += c.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      let event: unknown;
      try {
        event = JSON.parse(line);
      } catch {
        continue; // not JSON
      }
      if (event && typeof event === 'object') onEvent(event as Record<string, unknown>);
    }
  });
}

export interface TimedLine {
  at: number;
  line: string;
}

export interface StreamResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  lines: TimedLine[];
  /** Set when the connection ended without a complete answer. */
  error?: string;
  endedAt: number;
  protocol: string;
}

/** POSTs JSON over HTTPS (HTTP/1.1) and records each NDJSON line with its arrival time. */
export function httpsStream(options: {
  port: number;
  path: string;
  body: unknown;
  token?: string;
  ca: string | Buffer;
  headers?: Record<string, string>;
  onLine?: (line: TimedLine) => void;
}): Promise<StreamResult> {
  const data = Buffer.from(JSON.stringify(options.body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: options.port,
        method: 'POST',
        path: options.path,
        ca: options.ca,
        agent: false,
        headers: {
          host: `localhost:${options.port}`,
          'content-type': 'application/json',
          'content-length': data.length,
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...options.headers,
        },
      },
      (res) => collectLines(res, `HTTP/${res.httpVersion}`, res.statusCode ?? 0, res.headers, options.onLine).then(resolve, reject),
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** The same over HTTP/2 (what browsers use), ALPN-negotiated with nginx. */
export function http2Stream(options: {
  port: number;
  path: string;
  body: unknown;
  token?: string;
  ca: string | Buffer;
  onLine?: (line: TimedLine) => void;
}): Promise<StreamResult> {
  const data = Buffer.from(JSON.stringify(options.body));
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://localhost:${options.port}`, { ca: options.ca, host: '127.0.0.1', servername: 'localhost' } as http2.SecureClientSessionOptions);
    session.on('error', reject);
    const stream = session.request({
      ':method': 'POST',
      ':path': options.path,
      'content-type': 'application/json',
      'content-length': String(data.length),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    });
    stream.on('error', reject);
    stream.on('response', (headers) => {
      const protocol = session.alpnProtocol === 'h2' ? 'HTTP/2.0' : String(session.alpnProtocol);
      collectLines(stream, protocol, Number(headers[':status']), headers as Record<string, string>, options.onLine).then(
        (r) => {
          session.close();
          resolve(r);
        },
        (e: unknown) => {
          session.destroy();
          reject(e as Error);
        },
      );
    });
    stream.end(data);
  });
}

function collectLines(
  stream: NodeJS.ReadableStream,
  protocol: string,
  status: number,
  headers: Record<string, string | string[] | undefined>,
  onLine?: (line: TimedLine) => void,
): Promise<StreamResult> {
  return new Promise((resolve) => {
    const lines: TimedLine[] = [];
    let buffer = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = { at: Date.now(), line: buffer.slice(0, nl) };
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        onLine?.(line);
      }
    });
    stream.on('end', () => resolve({ status, headers, lines, endedAt: Date.now(), protocol }));
    stream.on('error', (e: Error) => resolve({ status, headers, lines, error: e.message, endedAt: Date.now(), protocol }));
    stream.on('aborted', () => resolve({ status, headers, lines, error: 'aborted', endedAt: Date.now(), protocol }));
  });
}

/** A plain HTTPS request with the test CA; the body as text. */
export function httpsRequest(options: {
  port: number;
  path: string;
  method?: string;
  ca: string | Buffer;
  headers?: Record<string, string | number>;
  body?: Buffer | string;
}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; rawHeaders: string[] }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: options.port,
        method: options.method ?? 'GET',
        path: options.path,
        ca: options.ca,
        agent: false,
        headers: { host: `localhost:${options.port}`, ...options.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c.length + body.length < 1 << 20 ? c : ''));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, rawHeaders: res.rawHeaders }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** How many times a header appears (raw, so a doubled header is seen). */
export function headerCount(rawHeaders: string[], name: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) n++;
  return n;
}

/** Stops a child with `signal`, then SIGKILL after `graceMs`; resolves once it has exited. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
