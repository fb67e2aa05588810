/**
 * The per-user limit on failed client keys (issue 9): guesses at one user's keys from many
 * addresses are bounded as a whole, not only per address. With CTLL_KEY_FAILURE_LIMIT=5 (and the
 * per-address limit out of the way), the sixth wrong key for the endpoint gets 429 with
 * Retry-After; that user's good key waits too, while the user's sign-in token and other endpoints'
 * keys are untouched.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { create, get, reforge } from './keys-harness.js';
import { startHeadless, type HeadlessRun } from '../cloud/headless-process.js';

const LIMIT = 5;

describe('failed client keys are limited per user', () => {
  let emulator: OllamaEmulator;
  let dir: string;
  let stack: HeadlessRun;

  before(async () => {
    emulator = new OllamaEmulator({ tokenIntervalMs: 1 });
    await emulator.start();
    dir = mkdtempSync(join(tmpdir(), 'ctll-key-limit-'));
    stack = await startHeadless(['--runtime', 'process', '--ollama-url', emulator.url], 60_000, {
      CTLL_CONFIG_DIR: dir,
      CTLL_KEY_FAILURE_LIMIT: String(LIMIT),
      CTLL_AUTH_FAILURE_LIMIT: '1000',
      // Each guess below claims another client address, as a spread-out attacker's would.
      CTLL_TRUST_PROXY: '1',
    });
  });
  after(async () => {
    const code = await stack?.stop();
    assert.equal(code, 0, stack?.stderr().slice(-1000));
    await emulator?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test(`the ${LIMIT + 1}th wrong key from ${LIMIT + 1} addresses gets 429; the token and other endpoints do not`, async () => {
    const good = create(dir, ['--name', 'good']).key;
    const tags = `${stack.endpoint}/api/tags`;
    assert.equal((await get(tags, good)).status, 200, 'the key works before any guess');
    const seen = emulator.requests.length;
    const from = (n: number): RequestInit => ({ headers: { 'x-real-ip': `198.51.100.${n}` } });
    for (let n = 1; n <= LIMIT; n += 1) {
      const guess = await get(tags, reforge(good, { secret: randomBytes(32) }), from(n));
      assert.equal(guess.status, 401, `guess ${n} is refused as a wrong key`);
      assert.match(String(guess.body['error']), /not valid for this endpoint/);
    }
    const over = await get(tags, reforge(good, { secret: randomBytes(32) }), from(LIMIT + 1));
    assert.equal(over.status, 429, `after ${LIMIT} failures from ${LIMIT} addresses`);
    assert.match(String(over.body['error']), /too many failed attempts with keys of this endpoint; retry in \d+ s/);
    assert.match(over.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    assert.equal(emulator.requests.length, seen, 'no guess reached the computer');

    // The whole endpoint's keys wait out the window, the good one too (from a fresh address):
    // it is the only way a limit per user bounds guesses spread over many addresses.
    const waiting = await get(tags, good, from(200));
    assert.equal(waiting.status, 429);
    // The user's sign-in token is another credential, and keeps working.
    const token = await get(tags, stack.token, from(201));
    assert.equal(token.status, 200, JSON.stringify(token.body));
    // Another endpoint's routing part is not locked: a key for a user with no computer connected
    // gets the ordinary "not connected" answer, not 429.
    const other = await get(tags, reforge(good, { route: randomBytes(16).toString('base64url') }), from(202));
    assert.equal(other.status, 503, JSON.stringify(other.body));
  });
});
