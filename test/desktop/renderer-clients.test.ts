/**
 * Settings' "Use from other apps" in a real Chromium. The window talks to the real key service
 * (main/client-keys.ts) over a KeyStore of a temporary directory, the one `npm run keys` and a
 * bridge's KeyRing read there too: a key made by clicking is listed by the CLI and reaches a
 * running KeyRing; its QR code is decoded from the canvas's pixels with jsQR.
 * Skipped without Chromium, except in CI (CI=true), where that is a failure.
 */
import { afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import jsqrModule, { type QRCode } from 'jsqr';
import type { BrowserContext, Page } from 'playwright';
import { matchesVerifier, parseClientKey } from '@cloudtolocalllm/bridge/connection/client-key';
import { KeyRing } from '@cloudtolocalllm/bridge/keys/key-ring';
import { KeyStore } from '@cloudtolocalllm/bridge/keys/key-store';
import { ClientKeys } from '../../main/client-keys.js';
import { clientSnippets, qrText } from '../../renderer/lib/client-snippets.js';
import {
  chromiumUnavailable,
  FakeDesktop,
  inPage,
  ROOT,
  screenshot,
  watchConsole,
  waitInPage,
  waitUntil,
  type ConsoleWatch,
  useBuiltRenderer,
} from './renderer-harness.js';

const unavailable = chromiumUnavailable();
if (unavailable && process.env['CI'] === 'true') {
  test('Chromium is installed (CI machines must have it)', () => assert.fail(unavailable));
}

const ENDPOINT = 'https://cloud.example.com/ollama';
const USER_HASH = 'ab'.repeat(32);
// jsqr is CommonJS with `exports.default`: under Node's ESM loader the function is `.default`.
const jsQR = (jsqrModule as unknown as { default: (data: Uint8ClampedArray, width: number, height: number) => QRCode | null }).default;
const KEY_SHAPE = /^ctll_[A-Za-z0-9_-]{78}$/;

/** `npm run keys -- list --json` on `dir`, as a person would run it (the CLI itself, through tsx). */
async function cliList(dir: string): Promise<Array<{ id: string; name: string; models: string[] | null; allow: string[]; machines: string[] | null; expiresAt: number | null }>> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(ROOT, 'bridge/keys/cli.ts'), 'list', '--json'], {
    cwd: ROOT,
    env: { ...process.env, CTLL_CONFIG_DIR: dir },
  });
  return JSON.parse(stdout) as Awaited<ReturnType<typeof cliList>>;
}

describe('Settings: Use from other apps', { skip: unavailable }, () => {
  const built = useBuiltRenderer();
  let context: BrowserContext;
  let page: Page;
  let fake: FakeDesktop;
  let console_: ConsoleWatch;
  let dir: string;
  let store: KeyStore;

  before(async () => {
    context = await built.browser.newContext({ viewport: { width: 760, height: 900 }, colorScheme: 'light' });
    context.setDefaultTimeout(5_000);
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ctll-clients-'));
    store = new KeyStore(dir);
    store.recordSignIn(USER_HASH, ENDPOINT);
    page = await context.newPage();
    fake = new FakeDesktop();
    fake.keys = new ClientKeys(store);
    await fake.install(page);
    console_ = watchConsole(page);
  });
  afterEach(async () => {
    const problems = console_.errors();
    const csp = await console_.cspViolations();
    await page.close();
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(problems, [], 'the window logged errors');
    assert.deepEqual(csp, [], 'the window broke its Content-Security-Policy');
  });

  async function open(): Promise<void> {
    await page.goto(`${built.server.origin}/settings.html`);
    await page.waitForSelector('body[data-ready="true"]');
    await page.waitForSelector('#clients[aria-busy="false"]');
  }
  const text = async (selector: string): Promise<string> => (await page.locator(selector).textContent()) ?? '';

  async function fillAndCreate(fields: { name?: string; models?: string; machines?: string; expires?: string; allow?: string[] }): Promise<void> {
    await page.fill('#key-name', fields.name ?? '');
    await page.fill('#key-models', fields.models ?? '');
    await page.fill('#key-machines', fields.machines ?? '');
    await page.fill('#key-expires', fields.expires ?? '');
    for (const a of fields.allow ?? []) await page.check(`#key-allow-${a}`);
    await page.click('#create-key');
  }

  test('shows both base URLs, and each copy button puts exactly that URL on the clipboard', async () => {
    await open();
    assert.equal(await text('#ollama-base-url'), ENDPOINT);
    assert.equal(await text('#openai-base-url'), `${ENDPOINT}/v1`);
    await page.click('#copy-ollama-url');
    await waitUntil(() => fake.clipboard.length === 1, 'the first copy reached the main process');
    await page.click('#copy-openai-url');
    await waitUntil(() => fake.clipboard.length === 2, 'the second copy reached the main process');
    assert.deepEqual(fake.clipboard, [ENDPOINT, `${ENDPOINT}/v1`]);
    assert.equal(await text('#clients-message'), 'OpenAI base URL copied.');
    assert.equal(await text('#key-list-empty'), 'No keys yet.');
  });

  test('a key made in the window: its secret once, listed here and by npm run keys, known to a running bridge within 2 s, snippets and a QR code that decodes to URL and key', async (t) => {
    const ring = new KeyRing(new KeyStore(dir), { debounceMs: 50 });
    ring.start();
    t.after(() => ring.close());
    await open();
    await fillAndCreate({ name: 'phone', models: 'llama3.2, qwen3:8b', machines: 'desk, laptop', expires: '30d', allow: ['pull'] });
    await page.waitForSelector('#new-key:not([hidden])');
    const shown = performance.now();
    const secret = await text('#new-key-secret');
    assert.match(secret, KEY_SHAPE);
    assert.equal(await text('#new-key-name'), 'phone');

    // A running bridge's KeyRing (fs.watch on the directory) has it within 2 s.
    const id = /^ctll_/.test(secret) ? (parseClientKey(secret) as { id: string }).id : '';
    await waitUntil(() => ring.get(id) !== undefined, 'the running KeyRing knows the new key', 2_000);
    t.diagnostic(`key known to the running KeyRing ${Math.round(performance.now() - shown)} ms after the window showed it`);

    // In the store the CLI reads, with the scopes typed; only the verifier is kept.
    const listed = await cliList(dir);
    assert.equal(listed.length, 1);
    const made = listed[0]!;
    assert.equal(made.name, 'phone');
    assert.deepEqual(made.models, ['llama3.2', 'qwen3:8b']);
    assert.deepEqual(made.allow, ['pull']);
    assert.deepEqual(made.machines, ['desk', 'laptop']);
    assert.deepEqual(ring.line().keys.find((k) => k.id === made.id)?.scope?.machines, ['desk', 'laptop'], 'the computer list goes to the proxy with the key');
    assert.ok(made.expiresAt !== null && Math.abs(made.expiresAt - (Date.now() + 30 * 86_400_000)) < 60_000, 'expires in 30 days');
    const parsed = parseClientKey(secret);
    assert.ok(parsed.ok, 'the key shown parses');
    assert.equal(parsed.id, made.id);
    assert.ok(matchesVerifier(parsed, store.keys()[0]!.verifier), 'the key shown is the one whose verifier is stored');


    // Listed in the window.
    await page.waitForSelector(`#key-list tr[data-key-id="${made.id}"]`);
    const row = await text(`#key-list tr[data-key-id="${made.id}"]`);
    for (const part of ['phone', made.id, 'models: llama3.2, qwen3:8b', 'management: pull', 'computers: desk, laptop', '0 requests']) assert.ok(row.includes(part), `the row shows ${part}: ${row}`);

    // Snippets: each with the real base URL and the key, exactly as the pure module makes them.
    const expected = clientSnippets(ENDPOINT, secret, 'llama3.2');
    for (const s of expected) {
      const shown = await text(`[data-snippet="${s.id}"] pre`);
      assert.equal(shown, s.text, `${s.id} as shown`);
      assert.ok(shown.includes(secret), `${s.id} has the key`);
      assert.ok(shown.includes(ENDPOINT), `${s.id} has the base URL`);
    }
    await page.click('[data-copy="openai-js"]');
    await page.click('#copy-key');
    await waitUntil(() => fake.clipboard.length === 2, 'both copies reached the main process');
    assert.deepEqual(fake.clipboard, [expected.find((s) => s.id === 'openai-js')!.text, secret]);

    // The QR code, decoded from the canvas's pixels.
    const image = await inPage<{ width: number; height: number; data: number[] }>(
      page,
      `(() => { const c = document.getElementById('new-key-qr'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height); return { width: c.width, height: c.height, data: Array.from(d.data) }; })()`,
    );
    assert.ok(image.width > 100, `the QR canvas is ${image.width} px wide`);
    const decoded = jsQR(new Uint8ClampedArray(image.data), image.width, image.height);
    assert.ok(decoded, 'jsQR finds a QR code on the canvas');
    assert.equal(decoded.data, qrText(ENDPOINT, secret));
    assert.equal(decoded.data, `${ENDPOINT}\n${secret}`);
    await screenshot(page, 'settings-clients-new-key.png');

    // Closing the panel forgets the secret: not in the page, not on the canvas.
    await page.click('#close-new-key');
    assert.equal(await page.locator('#new-key').isVisible(), false);
    assert.equal(await inPage<boolean>(page, `document.documentElement.outerHTML.includes(${JSON.stringify(secret)})`), false, 'the secret is gone from the DOM');
    assert.equal(await inPage<number>(page, `document.getElementById('new-key-qr').width`), 0, 'the QR canvas is emptied');
    assert.equal(await inPage<number>(page, `document.querySelectorAll('[data-snippet]').length`), 0, 'the snippets are gone');
    await page.evaluate(`document.getElementById('copy-key').click()`);
    await page.click('#copy-ollama-url');
    await waitUntil(() => fake.clipboard.length === 3, 'the URL copy reached the main process');
    assert.equal(fake.clipboard[2], ENDPOINT, 'the key button no longer copies the key (its listener went with the panel)');
    await screenshot(page, 'settings-clients-list.png');
  });

  test('bad input is refused in place with what is wrong, and nothing typed is lost', async () => {
    await open();
    await fillAndCreate({ name: '', models: 'llama 3', machines: 'desk, my laptop', expires: 'tomorrow' });
    assert.equal(await text('#key-name-error'), 'a key needs a name, such as "open-webui" or "phone"');
    assert.match(await text('#key-models-error'), /"llama 3" is not a model name/);
    assert.match(await text('#key-machines-error'), /^the computer name "my laptop" may hold only letters, digits/);
    assert.equal(await page.locator('#key-machines').getAttribute('aria-invalid'), 'true');
    assert.match(await text('#key-expires-error'), /the expiry "tomorrow" is not a duration \(30d, 12h, 90m, 2w\) nor a date/);
    assert.equal(await page.locator('#key-name').getAttribute('aria-invalid'), 'true');
    assert.ok((await page.locator('#key-models').getAttribute('aria-describedby'))?.includes('key-models-error'));
    assert.equal(await inPage<string>(page, 'document.activeElement.id'), 'key-name', 'focus on the first wrong field');
    assert.equal(await page.locator('#key-models').inputValue(), 'llama 3', 'what was typed stays');
    assert.equal(await page.locator('#key-expires').inputValue(), 'tomorrow');
    assert.equal(await page.locator('#key-machines').inputValue(), 'desk, my laptop');
    assert.deepEqual(fake.callsOf('createKey'), [], 'nothing was sent');
    await screenshot(page, 'settings-clients-errors.png');

    await fillAndCreate({ name: 'x/y', expires: '2020-01-01' });
    assert.match(await text('#key-name-error'), /the name "x\/y" is not usable/);
    assert.equal(await text('#key-expires-error'), 'the expiry 2020-01-01 is in the past');
    assert.equal(await page.locator('#key-models-error').isVisible(), false, 'a fixed field loses its error');
    assert.equal(await page.locator('#key-machines-error').isVisible(), false);

    // A name taken behind the window's back (the CLI, a moment ago): the main process says so, in place.
    store.create({ name: 'editor' });
    await fillAndCreate({ name: 'editor', models: 'llama3.2' });
    await waitInPage(page, `document.getElementById('key-name-error').textContent.includes('exists already')`);
    assert.equal(await text('#key-name-error'), 'a key named "editor" exists already; choose another name or revoke that one first');
    assert.equal(await page.locator('#key-models').inputValue(), 'llama3.2');
    assert.equal(fake.callsOf('createKey').length, 1, 'that one went to the main process');
    assert.equal(store.keys().length, 1, 'no second key');
    assert.equal(await page.locator('#new-key').isVisible(), false, 'no secret shown');

    // The main process applies the same rules to what reaches it without the window's checks.
    assert.deepEqual(fake.keys!.create({ name: '', models: 'a b', allow: ['format-disk' as 'pull'], machines: 'desk, -x', expires: '0d' }), {
      ok: false,
      errors: {
        name: 'a key needs a name, such as "open-webui" or "phone"',
        models: '"a b" is not a model name (names look like llama3.2 or qwen3:8b, separated by commas)',
        machines: 'the computer name "-x" may hold only letters, digits, ".", "-" and "_", and must start with a letter or digit (computer names as each computer shows them, separated by commas)',
        allow: 'not model management this app knows: format-disk',
        expires: 'the expiry "0d" is no time at all: a key must live longer than that',
      },
    });
  });

  test('revoke asks first; confirmed, the key leaves the window and the store', async () => {
    const kept = store.create({ name: 'kept' }).definition;
    const gone = store.create({ name: 'laptop' }).definition;
    await open();
    assert.equal(await page.locator('#key-list tr').count(), 2);
    await page.click(`tr[data-key-id="${gone.id}"] button[aria-label="Revoke laptop"]`);
    assert.match(await text(`tr[data-key-id="${gone.id}"] .confirm`), /Revoke "laptop"\? Apps using it stop working within 2 s/);
    await screenshot(page, 'settings-clients-revoke.png');
    await page.click(`tr[data-key-id="${gone.id}"] button:text("Cancel")`);
    assert.deepEqual(fake.callsOf('revokeKey'), [], 'cancel revokes nothing');
    assert.equal(store.keys().length, 2);

    await page.click(`tr[data-key-id="${gone.id}"] button[aria-label="Revoke laptop"]`);
    await page.click(`tr[data-key-id="${gone.id}"] button[data-confirm]`);
    await page.waitForSelector(`tr[data-key-id="${gone.id}"]`, { state: 'detached' });
    assert.equal(await text('#clients-message'), 'Key "laptop" revoked.');
    assert.deepEqual(store.keys().map((k) => k.id), [kept.id]);
    assert.deepEqual((await cliList(dir)).map((k) => k.name), ['kept']);
  });

  test('before anyone signs in here: no endpoint, and making a key says to sign in first', async () => {
    rmSync(join(dir, 'account.json'));
    await open();
    assert.equal(await text('#ollama-base-url'), 'Not known yet: set the cloud server URL and sign in');
    assert.equal(await page.locator('#copy-ollama-url').isDisabled(), true);
    assert.match(await text('#key-list-empty'), /Sign in first/);
    await fillAndCreate({ name: 'phone' });
    await waitInPage(page, `!document.getElementById('key-form-error').hidden`);
    assert.match(await text('#key-form-error'), /nobody is signed in with .*: sign in first/);
    assert.equal(await page.locator('#key-name').inputValue(), 'phone');
  });
});
