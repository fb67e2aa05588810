/**
 * The per-user proxy image holds only what the proxy needs: the file list of the image the Docker
 * tests build (security-checks.ts: PROXY_IMAGE, read by its tag; never built here), taken with
 * `docker create` + `docker export`, against the allow-list in proxy-image-files.txt. A new file
 * fails with its name; so does a setuid/setgid or world-writable file, or a symbolic link.
 *
 * Skipped without a Docker engine or without the image (the Docker tests before it build it),
 * except in CI (CI=true), where either is a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { IN_CI, run } from '../deploy/deploy-harness.js';
import { PROXY_IMAGE, PROXY_IMAGE_ALLOWLIST } from './security-checks.js';

const engine = await run('docker', ['info']).then(
  () => true,
  () => false,
);
const image = engine && (await run('docker', ['image', 'inspect', PROXY_IMAGE]).then(
  () => true,
  () => false,
));
const missing = !engine ? 'no Docker engine answers' : !image ? `the image ${PROXY_IMAGE} is not built (scripts/build-proxy-image.sh; the Docker tests build it)` : '';
if (missing && IN_CI) test('the proxy image can be inspected (CI machines build it in the Docker tests)', () => assert.fail(missing));
const skip = missing ? `${missing}; CI=true makes this a failure` : false;

interface Entry {
  mode: string;
  name: string;
  link?: string;
}

/** `tar -tv` of the container's filesystem, read straight from `docker export`. */
async function exportListing(container: string): Promise<Entry[]> {
  const docker = spawn('docker', ['export', container], { stdio: ['ignore', 'pipe', 'pipe'] });
  const tar = spawn('tar', ['-tvf', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  docker.stdout.pipe(tar.stdin);
  let out = '';
  let err = '';
  tar.stdout.on('data', (c: Buffer) => (out += c.toString()));
  tar.stderr.on('data', (c: Buffer) => (err += c.toString()));
  docker.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const [dockerCode, tarCode] = await Promise.all([docker, tar].map((p) => new Promise<number | null>((resolve) => p.on('close', resolve))));
  if (dockerCode !== 0 || tarCode !== 0) throw new Error(`docker export | tar -tv failed (${dockerCode}, ${tarCode}): ${err}`);
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      // -rw-r--r-- root/root 728 2026-12-01 23:18 app/healthcheck.mjs
      const fields = line.split(/\s+/);
      const rest = fields.slice(5).join(' ');
      const [name, link] = rest.split(' -> ');
      return { mode: fields[0]!, name: name!.replace(/\/$/, ''), ...(link !== undefined ? { link } : {}) };
    });
}

function allowList(): RegExp[] {
  return readFileSync(PROXY_IMAGE_ALLOWLIST, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((pattern) => new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]+')}$`));
}

test(`the proxy image (${PROXY_IMAGE}) holds only the files of its allow-list`, { skip }, async (t) => {
  const container = `ctll-image-audit-${randomBytes(4).toString('hex')}`;
  await run('docker', ['create', '--name', container, '--network', 'none', PROXY_IMAGE]);
  let entries: Entry[];
  try {
    entries = await exportListing(container);
  } finally {
    await run('docker', ['rm', '-f', container]);
  }
  const files = entries.filter((e) => !e.mode.startsWith('d'));
  t.diagnostic(`${files.length} files in the image`);
  const allowed = allowList();
  const names = new Set(files.map((f) => f.name));
  for (const needed of ['app/proxy.mjs', 'app/healthcheck.mjs', 'usr/bin/node']) assert.ok(names.has(needed), `${needed} is missing: is this the proxy image?`);

  const unexpected = files.filter((f) => !allowed.some((re) => re.test(f.name))).map((f) => f.name);
  assert.deepEqual(unexpected, [], `files not in ${PROXY_IMAGE_ALLOWLIST}`);
  const special = files.filter((f) => /[sS]/.test(f.mode.slice(3, 4) + f.mode.slice(6, 7))).map((f) => `${f.mode} ${f.name}`);
  assert.deepEqual(special, [], 'setuid/setgid files');
  const writable = entries.filter((e) => e.mode[8] === 'w' && !e.mode.startsWith('l') && e.mode[9] !== 't').map((e) => `${e.mode} ${e.name}`);
  assert.deepEqual(writable, [], 'files or directories anyone may write');
  // The engine's /etc/mtab is its one link; a link in the image could point anywhere.
  const links = files.filter((f) => f.link !== undefined && f.name !== 'etc/mtab').map((f) => `${f.name} -> ${f.link}`);
  assert.deepEqual(links, [], 'symbolic links');
});
