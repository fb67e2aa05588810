/**
 * The Settings window in a real Chromium, with a fake preload: what the user sees, what each
 * button asks the main process, and how errors land next to the fields they are about.
 * Skipped without Chromium, except in CI (CI=true), where that is a failure.
 */
import { before, beforeEach, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { BrowserContext, Page } from 'playwright';
import { validateSettings } from '../../main/settings/settings.js';
import {
  chromiumUnavailable,
  FakeDesktop,
  inPage,
  sampleStatus,
  screenshot,
  watchConsole,
  type ConsoleWatch,
  waitInPage,
  waitUntil,
  useBuiltRenderer,
} from './renderer-harness.js';

const unavailable = chromiumUnavailable();
if (unavailable && process.env['CI'] === 'true') {
  test('Chromium is installed (CI machines must have it)', () => assert.fail(unavailable));
}

describe('Settings window', { skip: unavailable }, () => {
  const built = useBuiltRenderer();
  let context: BrowserContext;
  let page: Page;
  let fake: FakeDesktop;
  let console_: ConsoleWatch;

  before(async () => {
    context = await built.browser.newContext({ viewport: { width: 640, height: 800 }, colorScheme: 'light' });
    context.setDefaultTimeout(5_000);
  });
  // One context, a fresh page (so a fresh fake, focus and media) per test.
  beforeEach(async () => {
    page = await context.newPage();
    fake = new FakeDesktop();
    await fake.install(page);
    console_ = watchConsole(page);
  });
  afterEach(async () => {
    const problems = console_.errors();
    await page.close();
    assert.deepEqual(problems, [], 'the window logged errors');
  });

  async function open(): Promise<void> {
    await page.goto(`${built.server.origin}/settings.html`);
    await page.waitForSelector('body[data-ready="true"]');
  }
  const errorOf = (field: string): Promise<string | null> => page.locator(`#${field}-error`).textContent();
  const focusedId = (): Promise<string> => inPage<string>(page, 'document.activeElement?.id ?? ""');
  async function assertInvalid(field: string, expected: string): Promise<void> {
    assert.equal(await page.locator(`#${field}-error`).isVisible(), true, `${field}: error shown`);
    assert.equal(await errorOf(field), expected);
    const input = page.locator(`#${field}`);
    assert.equal(await input.getAttribute('aria-invalid'), 'true', `${field}: aria-invalid`);
    assert.ok((await input.getAttribute('aria-describedby'))?.split(' ').includes(`${field}-error`), `${field}: aria-describedby names the error`);
  }
  async function assertValid(field: string): Promise<void> {
    assert.equal(await page.locator(`#${field}-error`).isVisible(), false, `${field}: no error shown`);
    assert.equal(await page.locator(`#${field}`).getAttribute('aria-invalid'), null, `${field}: not aria-invalid`);
  }
  const expectedError = (patch: Record<string, unknown>, field: 'cloudServerUrl' | 'ollamaUrl'): string => {
    const result = validateSettings({ ...fake.settings, ...patch });
    assert.equal(result.ok, false);
    return (result as { errors: Record<string, string> }).errors[field]!;
  };

  test('shows the saved settings and the status it is given', async () => {
    await open();
    assert.equal(await page.locator('#cloudServerUrl').inputValue(), '');
    assert.equal(await page.locator('#ollamaUrl').inputValue(), 'http://127.0.0.1:11434');
    assert.equal(await page.locator('#startAtLogin').isChecked(), false);
    assert.equal(await page.locator('#startMinimized').isChecked(), true);
    assert.equal(await page.locator('#logLevel').inputValue(), 'info');
    for (const endpoint of ['pull', 'push', 'create', 'copy', 'delete', 'blobs']) {
      assert.equal(await page.locator(`#allow-${endpoint}`).isChecked(), false, `${endpoint} is off by default`);
      assert.ok((await page.locator(`label[for="allow-${endpoint}"]`).textContent())?.includes(`/api/${endpoint}`));
      assert.ok(((await page.locator(`#allow-${endpoint}-hint`).textContent()) ?? '').length > 10, `${endpoint} is explained`);
    }
    assert.match((await page.locator('#allowManagement-note').textContent()) ?? '', /chat .*always allowed/s);
    assert.equal(await page.locator('#status-line').textContent(), 'Signed out');
    assert.equal(await page.locator('#account-summary').textContent(), 'Not signed in');
    assert.equal(await page.locator('#sign-in').isVisible(), true);
    assert.equal(await page.locator('#sign-out').isVisible(), false);
    assert.equal(await page.locator('#detail-keychain').textContent(), 'Tokens are kept in the system keychain (Secret Service)');
    assert.equal(await page.locator('#detail-ollama').textContent(), 'Not checked yet');
    assert.deepEqual(fake.callsOf('onStatus'), [[]], 'subscribed to status changes once');
    assert.equal(await page.locator('#cloudServerUrl').getAttribute('aria-invalid'), null);
    await screenshot(page, 'settings-empty.png');

    fake.settings = { cloudServerUrl: 'https://cloud.example.com', ollamaUrl: 'http://10.0.0.5:11434', startAtLogin: true, startMinimized: false, allowManagement: ['copy', 'pull'], logLevel: 'debug' };
    await open();
    assert.equal(await page.locator('#cloudServerUrl').inputValue(), 'https://cloud.example.com');
    assert.equal(await page.locator('#ollamaUrl').inputValue(), 'http://10.0.0.5:11434');
    assert.equal(await page.locator('#startAtLogin').isChecked(), true);
    assert.equal(await page.locator('#startMinimized').isChecked(), false);
    assert.equal(await page.locator('#logLevel').inputValue(), 'debug');
    assert.equal(await page.locator('#allow-pull').isChecked(), true);
    assert.equal(await page.locator('#allow-copy').isChecked(), true);
    assert.equal(await page.locator('#allow-delete').isChecked(), false);
  });

  test('says what is wrong with a URL when the field loses focus, and clears it once fixed', async () => {
    await open();
    const cloud = page.locator('#cloudServerUrl');
    await cloud.fill('ftp://x');
    assert.equal(await page.locator('#cloudServerUrl-error').isVisible(), false, 'no error while typing');
    await page.keyboard.press('Tab');
    await assertInvalid('cloudServerUrl', expectedError({ cloudServerUrl: 'ftp://x' }, 'cloudServerUrl'));
    assert.match((await errorOf('cloudServerUrl')) ?? '', /http:\/\/ or https:\/\//);

    await cloud.fill('http://cloud.example.com');
    await cloud.blur();
    await assertInvalid('cloudServerUrl', expectedError({ cloudServerUrl: 'http://cloud.example.com' }, 'cloudServerUrl'));
    assert.match((await errorOf('cloudServerUrl')) ?? '', /https:\/\//);

    await cloud.fill('https://cloud.example.com');
    await assertValid('cloudServerUrl');
    assert.ok((await cloud.getAttribute('aria-describedby'))?.includes('cloudServerUrl-hint'), 'the hint stays described');
    assert.equal(fake.callsOf('saveSettings').length, 0);
  });

  test('refuses to save invalid fields and focuses the first one', async () => {
    await open();
    await page.locator('#cloudServerUrl').fill('http://cloud.example.com');
    await page.locator('#ollamaUrl').fill('');
    await page.locator('#startAtLogin').focus();
    await page.locator('#save').click();
    await assertInvalid('cloudServerUrl', expectedError({ cloudServerUrl: 'http://cloud.example.com' }, 'cloudServerUrl'));
    await assertInvalid('ollamaUrl', 'The Ollama URL is required');
    assert.equal(await focusedId(), 'cloudServerUrl');
    assert.match((await page.locator('#form-message').textContent()) ?? '', /Not saved: check the 2 highlighted fields/);
    assert.equal(fake.callsOf('saveSettings').length, 0, 'nothing was sent');
    await screenshot(page, 'settings-errors.png');

    await page.locator('#cloudServerUrl').fill('');
    await page.keyboard.press('Enter'); // Enter in a field submits, like the Save button
    await assertValid('cloudServerUrl');
    await assertInvalid('ollamaUrl', 'The Ollama URL is required');
    assert.equal(await focusedId(), 'ollamaUrl');
    assert.equal(fake.callsOf('saveSettings').length, 0);
  });

  test('shows the errors main returns next to their fields', async () => {
    fake.onSave = () => ({
      ok: false,
      errors: { ollamaUrl: 'Nothing answers at http://127.0.0.1:11434', logLevel: 'the log level is locked by policy' },
    });
    await open();
    await page.locator('#save').click();
    await page.locator('#ollamaUrl-error').waitFor();
    await assertInvalid('ollamaUrl', 'Nothing answers at http://127.0.0.1:11434');
    await assertInvalid('logLevel', 'the log level is locked by policy');
    await assertValid('cloudServerUrl');
    assert.equal(await focusedId(), 'ollamaUrl');
    assert.equal(fake.callsOf('saveSettings').length, 1);

    fake.onSave = () => {
      throw new Error('the main process did not answer');
    };
    await page.locator('#ollamaUrl').fill('http://127.0.0.1:11435');
    await page.locator('#save').click();
    await waitInPage(page, 'document.querySelector("#form-message").textContent.includes("did not answer")');
    await assertValid('ollamaUrl');
  });

  test('saves the checked values, and they come back when the window opens again', async () => {
    await open();
    await page.locator('#cloudServerUrl').fill('  https://cloud.example.com/  ');
    await page.locator('#ollamaUrl').fill('http://127.0.0.1:11500');
    await page.locator('#startAtLogin').check();
    await page.locator('#startMinimized').focus();
    await page.keyboard.press('Space'); // keyboard toggles work
    await page.locator('#allow-pull').check();
    await page.locator('#allow-delete').check();
    await page.locator('#logLevel').selectOption('debug');
    await page.locator('#save').click();
    await waitInPage(page, 'document.querySelector("#form-message").textContent === "Saved."');
    assert.deepEqual(fake.callsOf('saveSettings'), [
      [
        {
          cloudServerUrl: 'https://cloud.example.com',
          ollamaUrl: 'http://127.0.0.1:11500',
          startAtLogin: true,
          startMinimized: false,
          allowManagement: ['delete', 'pull'],
          logLevel: 'debug',
        },
      ],
    ]);
    assert.equal(await page.locator('#cloudServerUrl').inputValue(), 'https://cloud.example.com', 'the form shows what was saved');

    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    const checked = await inPage<string[]>(page, '[...document.querySelectorAll("input[name=allowManagement]:checked")].map((b) => b.value)');
    assert.deepEqual(checked, ['pull', 'delete']);
    assert.equal(await page.locator('#startMinimized').isChecked(), false);
    assert.equal(await page.locator('#logLevel').inputValue(), 'debug');

    await page.locator('#allow-pull').uncheck();
    await page.locator('#save').click();
    await waitInPage(page, 'document.querySelector("#form-message").textContent === "Saved."');
    assert.deepEqual((fake.callsOf('saveSettings')[1]?.[0] as { allowManagement: string[] }).allowManagement, ['delete']);
  });

  test('Test reports the Ollama version and model count', async () => {
    await open();
    await page.locator('#ollamaUrl').fill('http://127.0.0.1:11434/');
    await page.locator('#test-ollama').click();
    await waitInPage(page, 'document.querySelector("#ollama-test-result").dataset.kind === "ok"');
    assert.equal(await page.locator('#ollama-test-result').textContent(), 'Ollama 0.12.3, 3 models');
    assert.deepEqual(fake.callsOf('testOllama'), [['http://127.0.0.1:11434']]);
    await screenshot(page, 'settings-test-ok.png');

    // An edit makes the last result stale.
    await page.locator('#ollamaUrl').fill('http://127.0.0.1:1143');
    assert.equal(await page.locator('#ollama-test-result').textContent(), '');
  });

  test('Test shows the error exactly as main reports it', async () => {
    const error = 'connect ECONNREFUSED 127.0.0.1:11434 — is Ollama running? Start it with `ollama serve`.';
    fake.onTestOllama = (url) => ({ ok: false, error, url });
    await open();
    await page.locator('#test-ollama').click();
    await waitInPage(page, 'document.querySelector("#ollama-test-result").dataset.kind === "error"');
    assert.equal(await page.locator('#ollama-test-result').textContent(), error);
    await screenshot(page, 'settings-test-fail.png');

    await page.locator('#ollamaUrl').fill('localhost:11434/api');
    await page.locator('#test-ollama').click();
    await assertInvalid('ollamaUrl', expectedError({ ollamaUrl: 'localhost:11434/api' }, 'ollamaUrl'));
    assert.equal(fake.callsOf('testOllama').length, 1, 'an invalid URL is not sent');
  });

  test('connection details follow the status main pushes', async () => {
    await open();
    const connectedSince = Date.now() - 125_000;
    const delivered = await fake.pushStatus(
      page,
      sampleStatus({
        trayState: 'connected',
        statusLine: 'Connected to cloud.example.com',
        account: { signedIn: true, name: 'Ada Lovelace' },
        bridge: { state: 'connected', connectedSince },
        proxy: { state: 'running' },
        ollama: { reachable: true, detail: 'Ollama 0.12.3' },
        counters: { requests: 1234, bytesIn: 1536, bytesOut: 5 * 1024 * 1024 * 1024, activeStreams: 2 },
        keychain: { available: false, detail: 'No keychain answered; tokens are kept in memory for this session' },
      }),
    );
    assert.equal(delivered, 1);
    assert.equal(await page.locator('#status-line').textContent(), 'Connected to cloud.example.com');
    assert.equal(await page.locator('#detail-state').textContent(), 'connected');
    assert.match((await page.locator('#detail-since').textContent()) ?? '', /\(for 2 min\)$/);
    assert.equal(await page.locator('#detail-requests').textContent(), '1,234');
    assert.equal(await page.locator('#detail-bytes-in').textContent(), '1.5 KiB');
    assert.equal(await page.locator('#detail-bytes-out').textContent(), '5 GiB');
    assert.equal(await page.locator('#detail-streams').textContent(), '2');
    assert.equal(await page.locator('#detail-proxy').textContent(), 'running');
    assert.equal(await page.locator('#detail-ollama').textContent(), 'Reachable: Ollama 0.12.3');
    assert.equal(await page.locator('#detail-keychain').textContent(), 'No keychain answered; tokens are kept in memory for this session');
    assert.equal(await page.locator('#detail-keychain').getAttribute('data-kind'), 'warn');
    assert.equal(await page.locator('#account-summary').textContent(), 'Signed in as Ada Lovelace');

    await fake.pushStatus(
      page,
      sampleStatus({
        trayState: 'error',
        statusLine: 'Reconnecting',
        account: { signedIn: true, name: 'Ada Lovelace' },
        bridge: { state: 'reconnecting', reason: 'the proxy closed the connection', retryInMs: 4_000 },
        ollama: { reachable: false, detail: 'connect ECONNREFUSED' },
        counters: { requests: 1300, bytesIn: 3 * 1024 * 1024 + 200 * 1024, bytesOut: 0, activeStreams: 0 },
      }),
    );
    assert.equal(await page.locator('#detail-state').textContent(), 'reconnecting — the proxy closed the connection — retrying in 4 s');
    assert.equal(await page.locator('#detail-since').textContent(), '—');
    assert.equal(await page.locator('#detail-bytes-in').textContent(), '3.2 MiB');
    assert.equal(await page.locator('#detail-bytes-out').textContent(), '0 B');
    assert.equal(await page.locator('#detail-ollama').textContent(), 'Not reachable: connect ECONNREFUSED');
    assert.equal(await page.locator('#detail-state').getAttribute('aria-live'), 'polite');
  });

  test('Sign in and Sign out call the API and the account follows', async () => {
    await open();
    await page.locator('#sign-in').focus();
    await page.keyboard.press('Enter');
    await waitInPage(page, 'document.querySelector("#account-summary").textContent.startsWith("Signed in")');
    assert.equal(fake.callsOf('signIn').length, 1);
    assert.equal(await page.locator('#account-summary').textContent(), 'Signed in as Ada Lovelace (https://auth.example.com)');
    assert.equal(await page.locator('#sign-in').isVisible(), false);
    assert.equal(await focusedId(), 'sign-out', 'focus moves to the button that replaced the one pressed');

    await page.locator('#sign-out').click();
    await waitInPage(page, 'document.querySelector("#account-summary").textContent === "Not signed in"');
    assert.equal(fake.callsOf('signOut').length, 1);
    assert.equal(await page.locator('#sign-in').isVisible(), true);

    fake.onSignIn = () => ({ ok: false, error: 'The sign-in page was closed before it finished' });
    await page.locator('#sign-in').click();
    await waitInPage(page, 'document.querySelector("#account-message").textContent.includes("closed")');
    assert.equal(await page.locator('#account-message').textContent(), 'The sign-in page was closed before it finished');
    assert.equal(await page.locator('#account-summary').textContent(), 'Not signed in');

    await page.locator('#open-logs').click();
    await waitUntil(() => fake.callsOf('openLogs').length === 1, 'openLogs is called');
  });

  test('fits from 420 to 800 px wide, in light and dark', async () => {
    await open();
    for (const width of [420, 800]) {
      await page.setViewportSize({ width, height: 900 });
      const overflow = await inPage<number>(page, 'document.documentElement.scrollWidth - document.documentElement.clientWidth');
      assert.equal(overflow, 0, `no sideways scrolling at ${width} px`);
    }
    await page.setViewportSize({ width: 420, height: 900 });
    await page.emulateMedia({ colorScheme: 'dark' });
    const background = await inPage<string>(page, 'getComputedStyle(document.body).backgroundColor');
    assert.equal(background, 'rgb(22, 25, 29)', 'dark background in dark mode');
    await screenshot(page, 'settings-dark-420.png');
  });
});
