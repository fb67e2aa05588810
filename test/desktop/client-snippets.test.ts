/**
 * The ready-to-paste settings of Settings' "Use from other apps" (renderer/lib/client-snippets.ts):
 * each carries the real base URL and key, and the JavaScript ones and the curl lines are run as
 * written, with the real clients (openai, ollama, @langchain/ollama, curl), against a recording
 * server: each request must reach the right path with `Authorization: Bearer KEY`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClientKey } from '@cloudtolocalllm/bridge/connection/client-key';
import { clientSnippets, openAiBase, qrText, type Snippet } from '../../renderer/lib/client-snippets.js';
import { ARTIFACTS, ROOT } from './renderer-harness.js';

const run = promisify(execFile);
const KEY = createClientKey('r'.repeat(22)).key;

interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
}

describe('client snippets', () => {
  let server: http.Server;
  let base: string;
  const seen: Seen[] = [];
  // Inside the repository, so `import 'openai'` resolves to the installed clients.
  mkdirSync(ARTIFACTS, { recursive: true });
  const dir = mkdtempSync(join(ARTIFACTS, 'snippets-'));

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
      req.resume();
      req.on('end', () => {
        const path = req.url ?? '';
        const json = (body: unknown): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        if (path === '/ollama/v1/models') return json({ object: 'list', data: [{ id: 'llama3.2:latest', object: 'model', created: 0, owned_by: 'library' }] });
        if (path === '/ollama/api/tags') return json({ models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest', size: 1, digest: 'd', details: {} }] });
        if (path === '/ollama/api/generate') return json({ model: 'llama3.2', response: 'blue', done: true });
        if (path === '/ollama/api/chat') {
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          return void res.end(JSON.stringify({ model: 'llama3.2', created_at: new Date().toISOString(), message: { role: 'assistant', content: 'hello there' }, done: true, done_reason: 'stop' }) + '\n');
        }
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not here"}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ollama`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const snippet = (id: Snippet['id'], ollamaBase = base): string => clientSnippets(ollamaBase, KEY).find((s) => s.id === id)!.text;

  test('every snippet names the base URL it needs and the key; OpenAI ones the /v1 base', () => {
    const all = clientSnippets('https://cloud.example.com/ollama/', KEY, 'qwen3:8b');
    assert.deepEqual(all.map((s) => s.id), ['curl', 'open-webui', 'openai-python', 'openai-js', 'ollama-js', 'langchain-python', 'langchain-js', 'continue']);
    for (const s of all) {
      assert.ok(s.text.includes(KEY), `${s.id} has the key`);
      const wantsOpenAi = ['open-webui', 'openai-python', 'openai-js', 'langchain-python', 'continue'].includes(s.id);
      assert.ok(s.text.includes(wantsOpenAi ? 'https://cloud.example.com/ollama/v1' : 'https://cloud.example.com/ollama/api') || (!wantsOpenAi && s.text.includes('"https://cloud.example.com/ollama"')), `${s.id} has its base URL: ${s.text}`);
      assert.ok(!s.text.includes('ollama//'), `${s.id}: no doubled slash`);
    }
    assert.match(all.find((s) => s.id === 'continue')!.text, /^ {4}model: qwen3:8b$/m, 'the model given is used');
    assert.equal(openAiBase('https://x/ollama/'), 'https://x/ollama/v1');
    assert.equal(qrText('https://x/ollama/', KEY), `https://x/ollama\n${KEY}`);
  });

  test('the curl lines, run by a shell, reach /api/tags and /api/generate with the key', async () => {
    seen.length = 0;
    const out = await run('bash', ['-c', snippet('curl').replace(/^curl /gm, 'curl -sS --fail ')]);
    assert.match(out.stdout, /llama3\.2:latest/);
    assert.match(out.stdout, /"response":"blue"/);
    assert.deepEqual(seen.map((s) => [s.method, s.path, s.authorization]), [
      ['GET', '/ollama/api/tags', `Bearer ${KEY}`],
      ['POST', '/ollama/api/generate', `Bearer ${KEY}`],
    ]);
  });

  for (const [id, path, printed] of [
    ['openai-js', '/ollama/v1/models', "[ 'llama3.2:latest' ]"],
    ['ollama-js', '/ollama/api/tags', "[ 'llama3.2:latest' ]"],
    ['langchain-js', '/ollama/api/chat', 'hello there'],
  ] as const) {
    test(`the ${id} snippet, run by Node with the real client, reaches ${path} with the key`, async () => {
      seen.length = 0;
      const file = join(dir, `${id}.mjs`);
      writeFileSync(file, snippet(id));
      const out = await run(process.execPath, [file], { cwd: ROOT, timeout: 60_000 });
      assert.equal(out.stdout.trim(), printed);
      assert.deepEqual(seen.map((s) => [s.path, s.authorization]), [[path, `Bearer ${KEY}`]]);
    });
  }

  test('docs/clients.md gives the same settings as the snippets (shape, with ENDPOINT and KEY)', () => {
    const doc = readFileSync(join(ROOT, 'docs/clients.md'), 'utf8');
    for (const expected of [
      "new OpenAI({ baseURL: ENDPOINT + '/v1', apiKey: KEY })",
      "new Ollama({ host: ENDPOINT, headers: { Authorization: 'Bearer KEY' } })",
      'OpenAI(base_url="ENDPOINT/v1", api_key="KEY")',
      'ChatOpenAI(base_url="ENDPOINT/v1", api_key="KEY", model="llama3.2")',
      '`provider: openai`, `apiBase: ENDPOINT/v1`, `apiKey: KEY`, `model: llama3.2`',
      'OpenAI API: URL `ENDPOINT/v1`, key `KEY`',
    ]) {
      assert.ok(doc.includes(expected), `docs/clients.md has ${expected}`);
    }
    const s = clientSnippets('ENDPOINT', 'KEY');
    const text = (id: Snippet['id']): string => s.find((x) => x.id === id)!.text;
    assert.ok(text('openai-js').includes('new OpenAI({ baseURL: "ENDPOINT/v1", apiKey: "KEY" })'));
    assert.ok(text('ollama-js').includes('new Ollama({ host: "ENDPOINT", headers: { Authorization: "Bearer KEY" } })'));
    assert.ok(text('openai-python').includes('OpenAI(base_url="ENDPOINT/v1", api_key="KEY")'));
    assert.ok(text('langchain-python').includes('ChatOpenAI(base_url="ENDPOINT/v1", api_key="KEY", model="llama3.2")'));
    assert.match(text('continue'), /provider: openai\n {4}model: llama3\.2\n {4}apiBase: ENDPOINT\/v1\n {4}apiKey: KEY/);
    assert.ok(text('open-webui').includes('URL: ENDPOINT/v1\n  Key: KEY'));
  });
});
