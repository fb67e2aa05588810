/**
 * The About window, and the Content-Security-Policy of both windows, in a real Chromium.
 * Skipped without Chromium, except in CI (CI=true), where that is a failure.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright';
import {
  chromiumUnavailable,
  FakeDesktop,
  inPage,
  SAMPLE_ABOUT,
  screenshot,
  watchConsole,
  waitInPage,
  waitUntil,
  useBuiltRenderer,
} from './renderer-harness.js';

const unavailable = chromiumUnavailable();
if (unavailable && process.env['CI'] === 'true') {
  test('Chromium is installed (CI machines must have it)', () => assert.fail(unavailable));
}

describe('About window and CSP', { skip: unavailable }, () => {
  const built = useBuiltRenderer();

  async function openPage(name: string): Promise<{ page: Page; fake: FakeDesktop; watch: ReturnType<typeof watchConsole>; close(): Promise<void> }> {
    const context = await built.browser.newContext({ viewport: { width: 520, height: 640 }, colorScheme: 'light' });
    context.setDefaultTimeout(5_000);
    const page = await context.newPage();
    const fake = new FakeDesktop();
    await fake.install(page);
    const watch = watchConsole(page);
    await page.goto(`${built.server.origin}/${name}`);
    await page.waitForSelector('body[data-ready="true"]');
    return { page, fake, watch, close: () => context.close() };
  }

  test('shows the name, the versions and the licence', async () => {
    const { page, watch, close } = await openPage('about.html');
    assert.equal(await page.locator('#about-name').textContent(), 'CloudToLocalLLM');
    assert.equal(await page.locator('#about-version').textContent(), '0.1.0');
    assert.equal(await page.locator('#about-electron').textContent(), SAMPLE_ABOUT.electron);
    assert.equal(await page.locator('#about-node').textContent(), SAMPLE_ABOUT.node);
    assert.equal(await page.locator('#about-chromium').textContent(), SAMPLE_ABOUT.chromium);
    assert.equal(await page.locator('#about-license').textContent(), 'MIT');
    assert.equal(await page.title(), 'About CloudToLocalLLM');
    assert.deepEqual(await page.locator('#about-links a').allTextContents(), SAMPLE_ABOUT.links.map((l) => l.label));
    await screenshot(page, 'about.png');
    assert.deepEqual(watch.errors(), []);
    await close();
  });

  test('links open in the system browser and the window never navigates', async () => {
    const { page, fake, close } = await openPage('about.html');
    const navigations: string[] = [];
    page.on('framenavigated', (frame) => navigations.push(frame.url()));
    const popups: string[] = [];
    page.on('popup', (p) => popups.push(p.url()));
    const start = page.url();

    await page.locator('#about-links a', { hasText: 'Source code' }).click();
    await page.locator('#about-links a', { hasText: 'Website' }).focus();
    await page.keyboard.press('Enter');
    await page.locator('#about-links a', { hasText: 'Report a problem' }).click({ button: 'middle' });
    await page.locator('#about-links a', { hasText: 'Website' }).click({ modifiers: ['Shift'] });
    await waitUntil(() => fake.callsOf('openExternal').length === 4, 'every click reached openExternal');
    await page.waitForTimeout(100); // a navigation, had a click started one, would be under way by now

    assert.deepEqual(fake.callsOf('openExternal'), [
      ['https://github.com/imrightguy/CloudToLocalLLM'],
      ['https://cloudtolocalllm.online'],
      ['https://github.com/imrightguy/CloudToLocalLLM/issues'],
      ['https://cloudtolocalllm.online'],
    ]);
    assert.equal(page.url(), start);
    assert.deepEqual(navigations, []);
    assert.deepEqual(popups, []);
    await close();
  });

  test('a link that is not http(s) is not shown', async () => {
    const context = await built.browser.newContext();
    const page = await context.newPage();
    const fake = new FakeDesktop();
    fake.about.links = [{ label: 'Danger', url: 'file:///etc/passwd' }, { label: 'Home', url: 'https://cloudtolocalllm.online' }];
    await fake.install(page);
    await page.goto(`${built.server.origin}/about.html`);
    await page.waitForSelector('body[data-ready="true"]');
    assert.deepEqual(await page.locator('#about-links a').allTextContents(), ['Home']);
    await context.close();
  });

  for (const name of ['settings.html', 'about.html']) {
    test(`${name} loads under its Content-Security-Policy without a violation, and inline script does not run`, async () => {
      const { page, watch, close } = await openPage(name);
      const csp = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
      assert.equal(
        csp,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'none'; base-uri 'none'; form-action 'none'",
      );
      assert.deepEqual(await watch.cspViolations(), [], 'the page itself needs nothing the policy forbids');

      await page.evaluate(`(() => {
        const s = document.createElement('script');
        s.textContent = 'window.__inlineRan = true';
        document.body.append(s);
        const b = document.createElement('button');
        b.id = 'inline-handler';
        b.setAttribute('onclick', 'window.__handlerRan = true');
        document.body.append(b);
        b.click();
        const d = document.createElement('div');
        d.setAttribute('style', 'color: rgb(1, 2, 3)');
        document.body.append(d);
        window.__inlineStyleColor = getComputedStyle(d).color;
      })()`);
      await waitInPage(page, 'window.__cspViolations.length >= 3');
      assert.equal(await inPage(page, 'window.__inlineRan === true'), false, 'inline <script> did not run');
      assert.equal(await inPage(page, 'window.__handlerRan === true'), false, 'inline event handler did not run');
      assert.notEqual(await inPage(page, 'window.__inlineStyleColor'), 'rgb(1, 2, 3)', 'inline style was not applied');
      const violations = await watch.cspViolations();
      assert.ok(violations.some((v) => /script-src/.test(v)), `script-src violation reported: ${violations.join('; ')}`);
      assert.ok(violations.some((v) => /style-src/.test(v)), `style-src violation reported: ${violations.join('; ')}`);
      await close();
    });
  }
});
