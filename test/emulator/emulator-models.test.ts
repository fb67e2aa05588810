// Blob uploads (streamed, hashed, never held) and the model-management progress streams.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { send, sendTimed } from './http-test-client.js';
import { OllamaEmulator } from './ollama-emulator.js';

const MiB = 1024 * 1024;

/** 50 MiB produced one 1 MiB chunk at a time, each different, so nothing holds the whole body. */
function* blobChunks(total = 50): Generator<Buffer> {
  for (let i = 0; i < total; i++) yield Buffer.alloc(MiB, (i * 37 + 11) & 0xff);
}

function blobDigest(): string {
  const hash = createHash('sha256');
  for (const chunk of blobChunks()) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

describe('OllamaEmulator blobs', { timeout: 15_000 }, () => {
  const emu = new OllamaEmulator();
  let url = '';
  before(async () => {
    url = await emu.start();
  });
  after(() => emu.close());

  const digest = blobDigest();

  it('takes a 50 MB streamed upload whose digest matches: 201, then HEAD 200', async () => {
    assert.equal((await send(url, { method: 'HEAD', path: `/api/blobs/${digest}` })).status, 404);
    const res = await send(url, { path: `/api/blobs/${digest}`, body: Readable.from(blobChunks()) });
    assert.equal(res.status, 201);
    assert.equal(res.text, '');
    const r = emu.requests.at(-1);
    assert.equal(r?.bodyBytes, 50 * MiB);
    assert.equal(`sha256:${r?.bodySha256}`, digest);
    assert.equal((await send(url, { method: 'HEAD', path: `/api/blobs/${digest}` })).status, 200);
  });

  it('answers 400 {"error"} to a 50 MB upload whose digest does not match, after reading it all', async () => {
    const wrong = `sha256:${'ab'.repeat(32)}`;
    const res = await send(url, { path: `/api/blobs/${wrong}`, body: Readable.from(blobChunks()) });
    assert.equal(res.status, 400);
    assert.equal(res.json().error, `digest mismatch, expected "${wrong}", got "${digest}"`);
    assert.equal(emu.requests.at(-1)?.bodyBytes, 50 * MiB);
    assert.equal((await send(url, { method: 'HEAD', path: `/api/blobs/${wrong}` })).status, 404);
  });

  it('answers 200 at once to an upload of a blob it already has, and 400 to a malformed digest', async () => {
    assert.equal((await send(url, { path: `/api/blobs/${digest}`, body: 'whatever' })).status, 200);
    const bad = await send(url, { path: '/api/blobs/md5:1234', body: 'x' });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json(), { error: 'invalid digest format' });
  });
});

describe('OllamaEmulator model management', { timeout: 15_000 }, () => {
  const emu = new OllamaEmulator({ pullChunks: 4 });
  let url = '';
  before(async () => {
    url = await emu.start();
  });
  afterEach(() => emu.set({ tokenIntervalMs: 2, firstByteDelayMs: 0 }));
  after(() => emu.close());

  it('streams pull progress as documented and adds the model', async () => {
    const res = await sendTimed(url, { path: '/api/pull', body: { model: 'mistral' } });
    assert.equal(res.headers['content-type'], 'application/x-ndjson');
    const lines = res.pieces.map((p) => JSON.parse(p.text));
    assert.deepEqual(lines[0], { status: 'pulling manifest' });
    const layers = lines.slice(1, 5);
    assert.equal(layers.length, 4);
    for (const [i, l] of layers.entries()) {
      assert.match(l.status, /^pulling [0-9a-f]{12}$/);
      assert.match(l.digest, /^sha256:[0-9a-f]{64}$/);
      assert.ok(l.total > 0);
      assert.ok(l.completed > (layers[i - 1]?.completed ?? 0) && l.completed <= l.total);
    }
    assert.equal(layers.at(-1)?.completed, layers.at(-1)?.total);
    assert.deepEqual(lines.slice(5).map((l) => l.status), ['verifying sha256 digest', 'writing manifest', 'success']);
    const { models } = (await send(url, { path: '/api/tags' })).json();
    assert.ok(models.some((m: { name: string }) => m.name === 'mistral:latest'));
  });

  it('answers a non-streaming pull with {"status":"success"}, and a missing one with an error line', async () => {
    const whole = await send(url, { path: '/api/pull', body: { model: 'phi3:mini', stream: false } });
    assert.equal(whole.status, 200);
    assert.deepEqual(whole.json(), { status: 'success' });
    const missing = await sendTimed(url, { path: '/api/pull', body: { model: 'does-not-exist' } });
    assert.deepEqual(missing.pieces.map((p) => JSON.parse(p.text)), [{ status: 'pulling manifest' }, { error: 'pull model manifest: file does not exist' }]);
  });

  it('delays the pull by firstByteDelayMs and paces its lines', async () => {
    emu.set({ firstByteDelayMs: 150, tokenIntervalMs: 20 });
    const res = await sendTimed(url, { path: '/api/pull', body: { model: 'llama3.2' } });
    assert.ok(res.headersAt >= 120, `headers after ${res.headersAt.toFixed(0)} ms`);
    const spread = (res.pieces.at(-1)?.at ?? 0) - (res.pieces[0]?.at ?? 0);
    assert.ok(spread >= 100, `8 lines at 20 ms spread over ${spread.toFixed(0)} ms`);
  });

  it('streams push progress, and 404s an unknown model', async () => {
    const res = await sendTimed(url, { path: '/api/push', body: { model: 'llama3.2' } });
    const statuses = res.pieces.map((p) => JSON.parse(p.text).status);
    assert.equal(statuses[0], 'retrieving manifest');
    assert.match(statuses[1], /^pushing [0-9a-f]{12}$/);
    assert.deepEqual(statuses.slice(-2), ['pushing manifest', 'success']);
    assert.equal((await send(url, { path: '/api/push', body: { model: 'ghost' } })).status, 404);
  });

  it('creates a model from another or from uploaded files, with a status stream', async () => {
    const res = await sendTimed(url, { path: '/api/create', body: { model: 'my-assistant', from: 'llama3.2', system: 'Be brief.' } });
    const statuses = res.pieces.map((p) => JSON.parse(p.text).status);
    assert.equal(statuses.at(-1), 'success');
    assert.ok(statuses.includes('writing manifest'));
    const show = (await send(url, { path: '/api/show', body: { model: 'my-assistant' } })).json();
    assert.equal(show.system, 'Be brief.');
    assert.equal(show.details.family, 'llama');

    const gguf = Buffer.from('GGUF fake weights');
    const digest = `sha256:${createHash('sha256').update(gguf).digest('hex')}`;
    assert.equal((await send(url, { path: `/api/blobs/${digest}`, body: gguf })).status, 201);
    const fromFiles = await send(url, { path: '/api/create', body: { model: 'from-files', files: { 'model.gguf': digest }, stream: false } });
    assert.deepEqual(fromFiles.json(), { status: 'success' });
    assert.ok(emu.models.get('from-files'));

    assert.equal((await send(url, { path: '/api/create', body: { model: 'x', files: { 'a.gguf': `sha256:${'0'.repeat(64)}` } } })).status, 400);
    assert.equal((await send(url, { path: '/api/create', body: { model: 'x', from: 'ghost' } })).status, 404);
    assert.deepEqual((await send(url, { path: '/api/create', body: { model: 'x' } })).json(), { error: "neither 'from' or 'files' was specified" });
  });
});
