/** What the client-key tests share: the `npm run keys` CLI as users run it, forged keys, a fetch helper. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { KEY_PREFIX } from '@cloudtolocalllm/bridge/connection/client-key';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Made {
  id: string;
  name: string;
  key: string;
}

/** A well-formed key (right checksum) with parts replaced: another secret, another user's routing part. */
export function reforge(key: string, parts: { route?: string; secret?: Buffer }): string {
  const bytes = Buffer.from(key.slice(KEY_PREFIX.length), 'base64url');
  if (parts.route) Buffer.from(parts.route, 'base64url').copy(bytes, 0);
  if (parts.secret) parts.secret.copy(bytes, 22);
  bytes.writeUInt32BE(crc32(Buffer.concat([Buffer.from(KEY_PREFIX), bytes.subarray(0, 54)])) >>> 0, 54);
  return KEY_PREFIX + bytes.toString('base64url');
}

/** Asks until the answer's status changes from `from`: each answer is an event, no fixed sleep. */
export async function untilNot(url: string, key: string, from: number): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  for (;;) {
    const r = await get(url, key);
    if (r.status !== from) return r;
  }
}

export function keysCli(dir: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bridge/keys/cli.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, CTLL_CONFIG_DIR: dir },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function create(dir: string, args: string[]): Made {
  const r = keysCli(dir, ['create', '--json', ...args]);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'create --json prints one line');
  return JSON.parse(lines[0]!) as Made;
}

export async function get(url: string, key: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string>) } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

