/**
 * The web client in a real Chromium against the real stack: the cloud server (in-process
 * proxies, embedded issuer), the Ollama emulator, and a bridge connected for the same user.
 * Sign-in goes through the issuer's own login page; chat answers stream through
 * browser → cloud server → proxy → bridge → emulator and back.
 * The tests of the main describe run in order and share one signed-in page.
 * Skipped without Chromium, except in CI (CI=true), where that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page, Request } from 'playwright';
import { expectedText } from '@cloudtolocalllm/ollama-emulator';
import {
  chromiumUnavailable,
  CSP_WATCH,
  inPage,
  launchChromium,
  screenshot,
  startWebStack,
  waitInPage,
  waitUntil,
  retryOnNetworkChange,
  watchConsole,
  type ConsoleWatch,
  type WebStack,
} from './web-harness.js';

const unavailable = chromiumUnavailable();
if (unavailable && process.env['CI'] === 'true') {
  test('Chromium is installed (CI machines must have it)', () => assert.fail(unavailable));
}

const USER = 'alice';

/** The text of the last answer in the conversation. */
const LAST_ANSWER = `(() => { const all = document.querySelectorAll('.message-assistant .message-text'); return all.length ? all[all.length - 1].textContent : null; })()`;
const ERROR_TEXT = `(() => { const e = document.getElementById('chat-error'); return e.hidden ? '' : e.textContent; })()`;

describe('web client', { skip: unavailable }, () => {
  let stack: WebStack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let watch: ConsoleWatch;
  let issuerOrigin: string;
  const requests: Request[] = [];

  before(async () => {
    [stack, browser] = await Promise.all([startWebStack(), launchChromium()]);
    issuerOrigin = new URL(stack.server.issuer).origin;
    await stack.connectBridge(USER);
    context = await browser.newContext({ viewport: { width: 1000, height: 760 }, colorScheme: 'light' });
    context.setDefaultTimeout(20_000);
    await context.addInitScript(CSP_WATCH);
    page = await context.newPage();
    page.on('request', (r) => requests.push(r));
    watch = watchConsole(page);
  });
  after(async () => {
    await browser?.close();
    await stack?.close();
  });

  async function goto(p: Page, url: string): Promise<void> {
    await retryOnNetworkChange(() => p.goto(url));
  }

  /**
   * From /app/ signed out: the Sign in button, the issuer's login page (when it asks), back to
   * /app/. A flow cut by a network change starts again from /app/.
   */
  async function signIn(p: Page, user: string, click = '#sign-in'): Promise<void> {
    let first = true;
    await retryOnNetworkChange(async () => {
      if (!first) {
        await p.goto(`${stack.origin}/app/`);
        await waitInPage(p, `document.body.dataset.ready === 'true'`);
        if (await p.isVisible('#chat')) return;
      }
      await signInOnce(p, user, first ? click : '#sign-in');
      first = false;
    });
  }

  async function signInOnce(p: Page, user: string, click: string): Promise<void> {
    await waitInPage(p, `document.body.dataset.ready === 'true'`);
    await p.click(click);
    // The issuer asks for a user name, unless its session still knows this browser.
    await p.waitForURL((url) => url.origin === issuerOrigin || url.search.includes('code='));
    if (new URL(p.url()).origin === issuerOrigin) {
      await p.waitForURL((url) => url.origin !== issuerOrigin || url.pathname.startsWith('/interaction/'));
      if (new URL(p.url()).origin === issuerOrigin) {
        await p.fill('#username', user);
        await p.click('button[value="sign-in"]');
      }
    }
    await p.waitForURL((url) => url.origin === stack.origin && url.pathname === '/app/' && url.search === '');
    await waitInPage(p, `document.body.dataset.ready === 'true' && !document.getElementById('chat').hidden`);
  }

  async function sendMessage(p: Page, text: string): Promise<void> {
    await p.fill('#prompt', text);
    await p.press('#prompt', 'Enter');
  }

  async function answerFinished(p: Page, timeoutMs = 20_000): Promise<void> {
    await waitInPage(p, `!document.querySelector('.message.streaming') && document.getElementById('stop').disabled`, timeoutMs);
  }

  async function cspViolations(p: Page): Promise<string[]> {
    return inPage<string[]>(p, 'window.__cspViolations ?? []');
  }

  test('the landing page and the docs are served with the CSP header and link to the app', async () => {
    const res = await fetch(`${stack.origin}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, new RegExp(`connect-src 'self' ${issuerOrigin.replaceAll('.', '\\.')}(;|$)`));
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.doesNotMatch(await res.text(), /http-equiv="Content-Security-Policy"/i, 'no <meta> CSP: the header is the policy');

    await goto(page, `${stack.origin}/`);
    assert.match(await page.textContent('h1') ?? '', /Your local models, from anywhere/);
    const links = await inPage<string[]>(page, `[...document.querySelectorAll('main a')].map((a) => a.getAttribute('href'))`);
    assert.ok(links.includes('/app/') && links.includes('/docs/'), links.join(' '));
    await page.click('main a[href="/docs/"]');
    await page.waitForURL(`${stack.origin}/docs/`);
    for (const id of ['how-it-works', 'get-the-app', 'privacy']) {
      assert.equal(await inPage<boolean>(page, `!!document.getElementById('${id}')`), true, `docs have #${id}`);
    }
    assert.deepEqual(await cspViolations(page), []);
  });

  test('signs in through the issuer (PKCE), shows the bridge connected and lists the models', async () => {
    await goto(page, `${stack.origin}/app`); // redirected to /app/
    assert.equal(new URL(page.url()).pathname, '/app/');
    await waitInPage(page, `document.body.dataset.ready === 'true' && !document.getElementById('signed-out').hidden`);
    assert.equal(await page.isVisible('#account'), false, 'no account shown while signed out');
    assert.equal(await page.isVisible('#chat'), false);
    await signIn(page, USER);
    assert.equal(await page.isVisible('#signed-out'), false);
    assert.equal(await page.isVisible('#account'), true);

    const auth = requests.map((r) => new URL(r.url())).find((u) => u.origin === issuerOrigin && u.pathname === '/auth');
    assert.ok(auth, 'the browser went to the authorization endpoint');
    assert.equal(auth.searchParams.get('code_challenge_method'), 'S256');
    assert.match(auth.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.ok((auth.searchParams.get('state') ?? '').length >= 32);
    assert.equal(auth.searchParams.get('redirect_uri'), `${stack.origin}/app/`);
    assert.equal(auth.searchParams.get('client_id'), 'cloudtolocalllm-web');
    assert.equal(auth.searchParams.get('resource'), stack.server.audience);
    assert.equal(auth.searchParams.get('audience'), stack.server.audience);

    assert.equal(await page.textContent('#account-name'), USER);
    await waitInPage(page, `document.getElementById('bridge').dataset.state === 'connected'`, 20_000);
    assert.match(await page.textContent('#bridge-status') ?? '', /Your computer is connected/);
    // The connected computers (issue 10): this bridge sends no name, so it is "default".
    await waitInPage(page, `document.querySelectorAll('#computers li').length === 1`);
    assert.match(await page.textContent('#computers li[data-computer="default"]') ?? '', /^default — connected since .+ · 0 requests in flight · from 127\.0\.0\.1$/);
    await waitInPage(page, `document.querySelectorAll('#model option[value]:not([value=""])').length > 0`);
    const models = await inPage<string[]>(page, `[...document.querySelectorAll('#model option')].map((o) => o.value)`);
    assert.deepEqual(models.sort(), stack.emulator.models.list().map((m) => m.name).sort());

    // Tokens only in this tab: sessionStorage, never localStorage; the code is gone from the address bar.
    assert.equal(await inPage<boolean>(page, `sessionStorage.getItem('ctll.session') !== null`), true);
    assert.equal(await inPage<number>(page, 'localStorage.length'), 0);
    assert.equal(new URL(page.url()).search, '');
    // Every control has a label.
    const unlabelled = await inPage<string[]>(page, `[...document.querySelectorAll('select, textarea, input')].filter((e) => e.labels.length === 0).map((e) => e.id)`);
    assert.deepEqual(unlabelled, []);
    // Where other apps connect (issue 9), and where their keys are made.
    assert.equal(await page.textContent('#ollama-base-url'), `${stack.origin}/ollama`);
    assert.equal(await page.textContent('#openai-base-url'), `${stack.origin}/ollama/v1`);
    assert.match(await page.textContent('#other-apps') ?? '', /npm run keys -- create --name NAME/);
    assert.match(await page.textContent('#other-apps') ?? '', /Settings, "Use from other apps"/);
    await screenshot(page, 'signed-in.png');
  });

  test('streams the answer token by token while the model is still generating', async () => {
    const tokens = 40;
    stack.emulator.set({ tokenIntervalMs: 60, defaultTokens: tokens });
    const full = expectedText(tokens);
    await sendMessage(page, 'Count for me, please.');

    const lengths: number[] = [];
    let shot = false;
    const deadline = Date.now() + 20_000;
    for (;;) {
      const generating = stack.emulator.activeGenerations() > 0;
      const text = (await inPage<string | null>(page, LAST_ANSWER)) ?? '';
      if (generating && text.length > 0 && text.length < full.length) {
        assert.ok(full.startsWith(text), `a prefix of the answer: ${JSON.stringify(text)}`);
        if (lengths.at(-1) !== text.length) lengths.push(text.length);
        if (!shot && text.length > full.length / 3) {
          shot = true;
          await screenshot(page, 'streaming.png');
        }
      }
      if (!generating && text === full) break;
      assert.ok(Date.now() < deadline, `the answer completes; so far ${JSON.stringify(text)}`);
      await new Promise((r) => setTimeout(r, 40));
    }
    assert.ok(lengths.length >= 4, `the answer grew in steps while the emulator generated: ${lengths.join(', ')}`);
    assert.deepEqual([...lengths].sort((a, b) => a - b), lengths, 'it only grows');
    await answerFinished(page);
    assert.equal(await inPage<string | null>(page, LAST_ANSWER), full);
    assert.equal(await inPage<string>(page, ERROR_TEXT), '');

    const chat = requests.filter((r) => r.url() === `${stack.origin}/ollama/api/chat`).at(-1);
    assert.ok(chat);
    const body = JSON.parse(chat.postData() ?? '{}') as { model: string; stream: boolean; messages: Array<{ role: string; content: string }> };
    assert.equal(body.stream, true);
    assert.equal(body.model, await page.inputValue('#model'));
    assert.deepEqual(body.messages, [{ role: 'user', content: 'Count for me, please.' }]);
    assert.match((await chat.allHeaders())['authorization'] ?? '', /^Bearer ey/);
  });

  test('Stop aborts the generation on the computer, and the partial answer stays', async () => {
    stack.emulator.set({ tokenIntervalMs: 60, defaultTokens: 300 });
    await sendMessage(page, 'Now count to three hundred.');
    await waitInPage(page, `(${LAST_ANSWER} ?? '').length > 30 && !document.getElementById('stop').disabled`);
    await page.click('#stop');
    const aborted = await stack.emulator.waitFor((r) => r.path === '/api/chat' && r.aborted, 5_000);
    assert.ok(aborted.tokensSent < 300, `stopped after ${aborted.tokensSent} tokens`);
    await answerFinished(page);
    const partial = (await inPage<string | null>(page, LAST_ANSWER)) ?? '';
    assert.ok(partial.length > 0 && expectedText(300).startsWith(partial));
    assert.equal(await inPage<string>(page, `document.querySelector('.message-assistant:last-of-type .message-note').textContent`), 'Stopped.');
    assert.equal(await inPage<string>(page, ERROR_TEXT), '', 'stopping is not an error');
    assert.equal(await page.isEnabled('#send'), true, 'ready for the next message');
    assert.equal(await page.isEnabled('#stop'), false);
    assert.equal(await inPage<string>(page, 'document.activeElement.id'), 'prompt', 'focus back in the message box');
    await screenshot(page, 'stopped.png');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await inPage<string | null>(page, LAST_ANSWER), partial, 'nothing more arrives');
  });

  test('Escape in the message box stops the answer too', async () => {
    stack.emulator.set({ tokenIntervalMs: 60, defaultTokens: 300 });
    const abortedBefore = stack.emulator.aborted.length;
    await sendMessage(page, 'And once more.');
    await waitInPage(page, `(${LAST_ANSWER} ?? '').length > 10 && !document.getElementById('stop').disabled`);
    await page.press('#prompt', 'Escape');
    await waitUntil(() => stack.emulator.aborted.length > abortedBefore, 'the emulator sees the generation aborted');
    await answerFinished(page);
    assert.equal(await inPage<string>(page, `document.querySelector('.message-assistant:last-of-type .message-note').textContent`), 'Stopped.');
  });

  test('an error line in the middle of the stream is shown in place, with what arrived before it', async () => {
    stack.emulator.set({ tokenIntervalMs: 5, defaultTokens: 10, failAfterTokens: 3 });
    try {
      await sendMessage(page, 'Fail after three tokens.');
      await answerFinished(page);
      await waitInPage(page, `${ERROR_TEXT} !== ''`);
      assert.match(await inPage<string>(page, ERROR_TEXT), /stopped with an error/i);
      assert.equal(await inPage<string | null>(page, LAST_ANSWER), expectedText(3));
      assert.equal(await inPage<string>(page, `document.querySelector('.message-assistant:last-of-type .message-note').textContent`), 'Incomplete.');
    } finally {
      stack.emulator.set({ failAfterTokens: undefined });
    }
  });

  test('a stream that ends without its last line is reported as broken off', async () => {
    const lines = [0, 1, 2].map((i) => JSON.stringify({ model: 'm', created_at: new Date().toISOString(), message: { role: 'assistant', content: `tok${i} ` }, done: false }));
    await page.route(`${stack.origin}/ollama/api/chat`, (route) => route.fulfill({ status: 200, contentType: 'application/x-ndjson', body: lines.join('\n') + '\n' }));
    try {
      await sendMessage(page, 'Cut me short.');
      await answerFinished(page);
      await waitInPage(page, `${ERROR_TEXT} !== ''`);
      assert.match(await inPage<string>(page, ERROR_TEXT), /broke off before it was complete/);
      assert.equal(await inPage<string | null>(page, LAST_ANSWER), expectedText(3));
    } finally {
      await page.unroute(`${stack.origin}/ollama/api/chat`);
    }
  });

  test('a 401 renews the token once, then asks to sign in again; signing in again works', async () => {
    const refreshes: string[] = [];
    const onRequest = (r: Request): void => {
      if (r.url().startsWith(issuerOrigin) && r.method() === 'POST' && /grant_type=refresh_token/.test(r.postData() ?? '')) refreshes.push(r.url());
    };
    page.on('request', onRequest);
    await page.route(`${stack.origin}/ollama/api/chat`, (route) =>
      route.fulfill({ status: 401, contentType: 'application/json', headers: { 'www-authenticate': 'Bearer error="invalid_token"' }, body: '{"error":"token expired"}' }),
    );
    try {
      await sendMessage(page, 'Is my token still good?');
      await waitInPage(page, `document.getElementById('chat-error').dataset.kind === 'sign-in'`);
      assert.match(await inPage<string>(page, ERROR_TEXT), /Sign in again/);
      assert.equal(refreshes.length, 1, 'one refresh with the (rotated) refresh token before giving up');
      assert.equal(await inPage<boolean>(page, `sessionStorage.getItem('ctll.session') === null`), true, 'the refused session is forgotten');
      assert.equal(await page.inputValue('#prompt'), 'Is my token still good?', 'the message is given back');
    } finally {
      page.off('request', onRequest);
      await page.unroute(`${stack.origin}/ollama/api/chat`);
    }
    const shown = await inPage<number>(page, `document.querySelectorAll('.message').length`);
    assert.ok(shown > 0);
    await signIn(page, USER, '#chat-error button');
    await waitInPage(page, `document.getElementById('bridge').dataset.state === 'connected'`, 20_000);
    assert.equal(await inPage<string>(page, ERROR_TEXT), '');
    assert.equal(await inPage<number>(page, `document.querySelectorAll('.message').length`), shown, 'the conversation came back');
    assert.equal(await page.inputValue('#prompt'), 'Is my token still good?', 'and so did the unsent message');
    assert.equal(await inPage<string | null>(page, `sessionStorage.getItem('ctll.carry')`), null);
  });

  test('a stream cut by the bridge going away, then "not connected" while it is down, and back when it returns', async () => {
    stack.emulator.set({ tokenIntervalMs: 60, defaultTokens: 300 });
    await waitInPage(page, `!document.getElementById('send').disabled || document.getElementById('prompt').value === ''`);
    await page.fill('#prompt', '');
    await sendMessage(page, 'Keep going until the bridge stops.');
    await waitInPage(page, `(${LAST_ANSWER} ?? '').length > 20`);
    await stack.disconnectBridge(USER);
    await answerFinished(page);
    await waitInPage(page, `${ERROR_TEXT} !== ''`);
    // The relay ends the cut stream with an error line of its own, then cuts the connection.
    // Chromium drops bytes still queued in the body when the connection errors (a server that
    // writes a line and then cuts: the line was lost in 1 of 40 fetches here), so the client's
    // own message for a cut stream is the other true outcome. Both say the answer is incomplete.
    assert.match(await inPage<string>(page, ERROR_TEXT), /connection to your computer was lost|The connection broke while the answer was streaming/);
    assert.match(await inPage<string>(page, `document.querySelector('.message-assistant:last-of-type .message-note').textContent`), /Incomplete/);

    await waitInPage(page, `document.getElementById('bridge').dataset.state === 'not-connected'`, 20_000);
    assert.match(await page.textContent('#bridge-status') ?? '', /not connected/);
    assert.match(await page.textContent('#bridge-help') ?? '', /Open CloudToLocalLLM on your computer/);
    assert.equal(await page.isVisible('#bridge-help'), true);

    await page.fill('#prompt', '');
    await sendMessage(page, 'Are you there?');
    await waitInPage(page, `document.getElementById('chat-error').dataset.kind === 'not-connected'`);
    assert.match(await inPage<string>(page, ERROR_TEXT), /Your computer is not connected/);
    assert.equal(await page.inputValue('#prompt'), 'Are you there?', 'the unsent message is given back');
    await screenshot(page, 'bridge-down.png');

    await stack.connectBridge(USER);
    await waitInPage(page, `document.getElementById('bridge').dataset.state === 'connected'`, 20_000);
    await waitInPage(page, `${ERROR_TEXT} === ''`);
    stack.emulator.set({ tokenIntervalMs: 2, defaultTokens: 4 });
    await page.press('#prompt', 'Enter');
    await answerFinished(page);
    assert.equal(await inPage<string | null>(page, LAST_ANSWER), expectedText(4));
  });

  test('history stays off by default; "Keep history in this browser" keeps it across a reload until turned off', async () => {
    assert.equal(await page.isChecked('#keep-history'), false);
    assert.equal(await inPage<number>(page, `Object.keys(localStorage).filter((k) => k.startsWith('ctll.history')).length`), 0);
    const shown = await inPage<number>(page, `document.querySelectorAll('.message').length`);
    assert.ok(shown >= 2);

    await page.check('#keep-history');
    await retryOnNetworkChange(() => page.reload());
    await waitInPage(page, `document.body.dataset.ready === 'true' && !document.getElementById('chat').hidden`);
    assert.equal(await page.isChecked('#keep-history'), true);
    assert.equal(await inPage<number>(page, `document.querySelectorAll('.message').length`), shown, 'the conversation came back');

    await page.uncheck('#keep-history');
    assert.equal(await inPage<number>(page, `Object.keys(localStorage).filter((k) => k.startsWith('ctll.')).length`), 0, 'turning it off deletes it');
    await retryOnNetworkChange(() => page.reload());
    await waitInPage(page, `document.body.dataset.ready === 'true' && !document.getElementById('chat').hidden`);
    assert.equal(await inPage<number>(page, `document.querySelectorAll('.message').length`), 0);
  });

  test('sign out revokes the refresh token, forgets the tab\'s tokens, and the next sign-in asks again', async () => {
    const revoked = page.waitForRequest((r) => r.url().startsWith(issuerOrigin) && /revocation/.test(r.url()));
    await page.click('#sign-out');
    await revoked;
    await waitInPage(page, `!document.getElementById('signed-out').hidden && document.getElementById('chat').hidden`);
    assert.equal(await page.isVisible('#account'), false);
    assert.equal(await page.isVisible('#chat'), false);
    assert.equal(await inPage<boolean>(page, `sessionStorage.getItem('ctll.session') === null`), true);
    assert.match(await page.textContent('#page-status') ?? '', /signed out/i);
    await page.click('#sign-in');
    await page.waitForURL((url) => url.origin === issuerOrigin && url.pathname.startsWith('/interaction/'));
    assert.equal(await page.isVisible('#username'), true, 'prompt=login: the issuer asks who you are');
    assert.equal(new URL(requests.filter((r) => r.url().startsWith(`${issuerOrigin}/auth`)).at(-1)!.url()).searchParams.get('prompt'), 'login');
  });

  test('no CSP violations and no unexpected console errors on the way', async () => {
    await goto(page, `${stack.origin}/app/`);
    await waitInPage(page, `document.body.dataset.ready === 'true'`);
    assert.deepEqual(await cspViolations(page), []);
    const errors = watch.errors().filter((m) => !/Failed to load resource/.test(m));
    assert.deepEqual(errors, []);
  });

  test('on a 360 px phone screen: no horizontal scroll, tap targets of 44 px', async () => {
    const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    phone.setDefaultTimeout(20_000);
    await phone.addInitScript(CSP_WATCH);
    try {
      const p = await phone.newPage();
      const starts: string[] = [];
      p.on('request', (r) => {
        if (r.method() === 'POST' && r.url() === `${stack.origin}/api/proxy/start`) starts.push(r.url());
      });
      for (const path of ['/', '/docs/']) {
        await goto(p, `${stack.origin}${path}`);
        assert.equal(await inPage<boolean>(p, 'document.documentElement.scrollWidth <= window.innerWidth'), true, `${path} fits 360 px`);
      }
      await goto(p, `${stack.origin}/app/`);
      await signIn(p, 'bob');
      // bob has no proxy yet: the page starts it, and explains that his computer is not connected.
      await waitInPage(p, `document.getElementById('bridge').dataset.state === 'not-connected'`, 20_000);
      assert.equal(starts.length, 1, 'POST /api/proxy/start once');
      await stack.connectBridge('bob');
      await waitInPage(p, `document.getElementById('bridge').dataset.state === 'connected'`, 20_000);
      await waitInPage(p, `!document.getElementById('send').disabled || document.querySelectorAll('#model option[value]:not([value=""])').length > 0`);
      stack.emulator.set({ tokenIntervalMs: 2, defaultTokens: 40 });
      await p.fill('#prompt', `A long link: https://example.com/${'a'.repeat(150)} and more text to wrap.`);
      await p.tap('#send');
      await answerFinished(p);
      const fits = await inPage<{ scrollWidth: number; innerWidth: number }>(p, '({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth })');
      assert.ok(fits.scrollWidth <= fits.innerWidth, `no horizontal scroll: ${JSON.stringify(fits)}`);
      const small = await inPage<string[]>(
        p,
        `[...document.querySelectorAll('button, select, textarea, a.button')].filter((e) => e.offsetParent !== null).map((e) => [e.id || e.textContent.trim(), e.getBoundingClientRect()]).filter(([, r]) => r.height < 44 || r.width < 44).map(([id, r]) => id + ' ' + Math.round(r.width) + 'x' + Math.round(r.height))`,
      );
      assert.deepEqual(small, [], 'every control is at least 44x44 px');
      await screenshot(p, 'phone.png');
      assert.deepEqual(await cspViolations(p), []);
    } finally {
      await phone.close();
      await stack.disconnectBridge('bob');
    }
  });
});
