/**
 * The web client without a browser: what scripts/build-web.ts writes, that its pages need nothing
 * the CSP forbids, that its browser code type-checks against the DOM, and the NDJSON reader that
 * turns a streamed chat answer into tokens (web-standard APIs only, so Node runs it as it is).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildWeb, type BuildWebResult } from '../../scripts/build-web.js';
import { GarbledStream, ndjsonLines, readChatChunk } from '@cloudtolocalllm/server/web/lib/ndjson';
import { ROOT } from './web-harness.js';

describe('web client build', () => {
  let dir: string;
  let built: BuildWebResult;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ctll-web-build-'));
    built = await buildWeb(join(dir, 'web'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('writes the landing page, the app, the docs, one script and the style sheet', () => {
    for (const name of ['index.html', 'app/index.html', 'docs/index.html', 'app.js', 'styles.css', 'icon.svg']) {
      assert.ok(built.files.includes(name), `${name} is built (${built.files.join(', ')})`);
    }
    assert.ok(!built.files.some((f) => f.endsWith('.ts') || f.includes('tsconfig')), 'no sources are published');
  });

  test('pages carry no inline script or style, no <meta> CSP, and load only what exists', async () => {
    for (const page of ['index.html', 'app/index.html', 'docs/index.html']) {
      const html = await readFile(join(built.outDir, page), 'utf8');
      assert.doesNotMatch(html, /<script>|<script(?![^>]*\ssrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i, `${page}: nothing inline`);
      assert.doesNotMatch(html, /http-equiv="Content-Security-Policy"/i, `${page}: the CSP is a response header`);
      assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
      for (const [, ref] of html.matchAll(/(?:src|href)="(\/[^"#?]*)"/g)) {
        const path = ref!.endsWith('/') ? `${ref}index.html` : ref!;
        assert.ok(built.files.includes(path.slice(1)), `${page} refers to ${ref}, which is built`);
      }
    }
    const js = await readFile(join(built.outDir, 'app.js'), 'utf8');
    assert.doesNotMatch(js, /\brequire\(|["']node:/, 'app.js needs nothing from Node');
    assert.doesNotMatch(js, /\beval\(|new Function\(/, 'app.js needs no eval (script-src has no unsafe-eval)');
  });

  test('the browser code type-checks against the DOM', async () => {
    const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
    const result = await promisify(execFile)(tsc, ['-p', join(ROOT, 'server', 'web', 'tsconfig.json'), '--noEmit'], { cwd: ROOT }).catch(
      (err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? 'tsc failed', stderr: err.stderr ?? '' }),
    );
    assert.equal(`${result.stdout}${result.stderr}`.trim(), '');
  });
});

function streamOf(chunks: Array<string | Uint8Array>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(typeof c === 'string' ? encoder.encode(c) : c);
      controller.close();
    },
  });
}

async function collect(body: ReadableStream<Uint8Array>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const value of ndjsonLines(body)) out.push(value);
  return out;
}

describe('NDJSON chat stream reader', () => {
  test('yields each line as it completes, across chunk boundaries and split UTF-8', async () => {
    const line = (content: string, done = false): string => JSON.stringify({ message: { role: 'assistant', content }, done });
    const text = `${line('héllo ')}\n${line('wörld 🌍')}\n${line('', true)}\n`;
    const bytes = new TextEncoder().encode(text);
    // One byte at a time: every multi-byte character is split somewhere.
    const chunks = [...bytes].map((b) => new Uint8Array([b]));
    const values = await collect(streamOf(chunks));
    assert.deepEqual(values.map(readChatChunk).map((c) => [c.token, c.done]), [
      ['héllo ', false],
      ['wörld 🌍', false],
      ['', true],
    ]);
  });

  test('reads a last line without a newline, skips blank lines, and reports error lines', async () => {
    const values = await collect(streamOf(['{"message":{"content":"a"},"done":false}\n\n', '{"error":"model crashed"}']));
    assert.deepEqual(values.map(readChatChunk), [
      { token: 'a', done: false },
      { token: '', done: false, error: 'model crashed' },
    ]);
  });

  test('refuses a line that is not JSON, or not an object', async () => {
    await assert.rejects(collect(streamOf(['{"message":{"content":"a"}}\n<html>oops</html>\n'])), GarbledStream);
    assert.throws(() => readChatChunk([1, 2]), GarbledStream);
  });

  test('stopping early cancels the body', async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new TextEncoder().encode('{"message":{"content":"x"},"done":false}\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const value of ndjsonLines(body)) {
      assert.equal(readChatChunk(value).token, 'x');
      break;
    }
    assert.equal(cancelled, true);
  });
});
