/**
 * scripts/deploy/data-request.sh on log files (the stack's own containers are exercised by
 * test/deploy/stack.test.ts): the user hash it computes is the server's, access prints exactly
 * the user's lines (audit lines with the whole hash, the server's other lines with its first 12
 * digits) and their addresses, erase deletes exactly those lines from plain JSON lines,
 * Docker json-file lines and gzip'd files (everything else byte for byte, same inode and mode),
 * --dry-run changes nothing, and bad input is refused with the reason.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { ROOT } from '../deploy/deploy-harness.js';

const SCRIPT = join(ROOT, 'scripts/deploy/data-request.sh');

function script(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(SCRIPT, args, { env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr });
    });
  });
}

const ALICE = 'auth0|alice-65f0c2';
const BOB = 'auth0|bob-77aa01';
const audit = (user: string, action: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ time: '2026-12-01T10:00:00.000Z', type: 'audit', action, result: 'ok', userHash: userHash(user), ...extra });
/** As Docker's json-file driver stores a line a container wrote on stderr. */
const dockerLine = (line: string): string => JSON.stringify({ log: `${line}\n`, stream: 'stderr', time: '2026-12-01T10:00:00.123456789Z' });

describe('scripts/deploy/data-request.sh on log files', () => {
  let dir: string;
  let plain: string;
  let docker: string;
  let zipped: string;
  /** The server's other log lines name a user by the hash's first 12 hex digits. */
  const logLine = (user: string, msg: string): string => JSON.stringify({ time: '2026-12-01T10:00:02.000Z', level: 'info', msg, component: 'proxy-manager', user: userHash(user).slice(0, 12) });
  const others = [
    audit(BOB, 'proxy.start'),
    JSON.stringify({ time: '2026-12-01T10:00:01.000Z', level: 'info', msg: 'listening', component: 'cloud-server' }),
    logLine(BOB, 'proxy started'),
    audit(BOB, 'bridge.connect', { address: '198.51.100.9', client: 'CloudToLocalLLM-bridge/0.1.0 (tunnel v1)' }),
  ];
  const alices = [audit(ALICE, 'proxy.start', { durationMs: 412 }), audit(ALICE, 'bridge.connect', { address: '203.0.113.7', client: 'CloudToLocalLLM-bridge/0.1.0 (tunnel v1)' })];
  alices.push(logLine(ALICE, 'proxy idle: destroying it'));
  const mixed = [others[0]!, alices[0]!, others[1]!, alices[1]!, others[2]!, alices[2]!, others[3]!];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ctll-data-request-'));
    plain = join(dir, 'audit.jsonl');
    docker = join(dir, 'container-json.log');
    zipped = join(dir, 'audit-2026-11.jsonl.gz');
    writeFileSync(plain, mixed.join('\n') + '\n');
    writeFileSync(docker, mixed.map(dockerLine).join('\n') + '\n');
    writeFileSync(zipped, gzipSync(mixed.join('\n') + '\n'));
    chmodSync(plain, 0o640);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('hash prints the user hash the server names the user by', async () => {
    const r = await script(['hash', ALICE]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), userHash(ALICE));
  });

  test("access prints the user's lines of every file, and the addresses in them", async () => {
    const r = await script(['access', ALICE, plain, docker, zipped]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.filter((l) => l.startsWith(`${plain}: `)).length, 3);
    assert.equal(lines.filter((l) => l.startsWith(`${docker}: `)).length, 3);
    assert.equal(lines.filter((l) => l.startsWith(`${zipped}: `)).length, 3);
    assert.ok(lines.includes(`${plain}: ${alices[1]}`));
    assert.match(r.stdout, /9 line\(s\) name user [0-9a-f]{64}/);
    assert.ok(lines.includes('address: 203.0.113.7'));
    assert.ok(!r.stdout.includes(userHash(BOB).slice(0, 12)), "another user's line was printed");
    assert.ok(!r.stdout.includes('198.51.100.9'), "another user's address was printed");
  });

  test('erase --dry-run counts and changes nothing', async () => {
    const before = readFileSync(plain);
    const r = await script(['erase', '--dry-run', '--hash', userHash(ALICE), plain]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /3 line\(s\) would be deleted/);
    assert.deepEqual(readFileSync(plain), before);
  });

  test("erase deletes exactly the user's lines, in place, from plain, json-file and gzip'd logs", async () => {
    const inode = statSync(plain).ino;
    const r = await script(['erase', ALICE, plain, docker, zipped]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /9 line\(s\) of user [0-9a-f]{64} deleted/);
    assert.equal(readFileSync(plain, 'utf8'), others.join('\n') + '\n');
    assert.equal(readFileSync(docker, 'utf8'), others.map(dockerLine).join('\n') + '\n');
    assert.equal(gunzipSync(readFileSync(zipped)).toString(), others.join('\n') + '\n');
    assert.equal(statSync(plain).ino, inode, 'the file was replaced, not rewritten in place');
    assert.equal(statSync(plain).mode & 0o777, 0o640);
    const again = await script(['access', ALICE, plain, docker, zipped]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /0 line\(s\) name user/);
  });

  test('bad input is refused with the reason', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [[], 2, /say what to do: hash, access or erase/],
      [['delete', ALICE], 2, /unknown action 'delete'/],
      [['access'], 2, /give the user id/],
      [['erase', '--hash', 'ABC', plain], 2, /is not a user hash/],
      [['access', ALICE, join(dir, 'no-such.log')], 1, /no-such\.log: no such file/],
      [['access', '--restart', ALICE, plain], 2, /--restart and --dry-run belong to erase/],
      [['hash', ALICE, plain], 2, /hash takes only the user id/],
    ];
    for (const [args, code, message] of cases) {
      const r = await script(args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
    }
  });
});
