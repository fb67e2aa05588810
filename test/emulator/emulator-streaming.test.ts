// Generation: NDJSON streaming, pacing, slow first byte, mid-stream failure, caller abort, big bodies.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { open, readLines, send, sendTimed, start } from './http-test-client.js';
import { expectedText, OllamaEmulator, type RecordedRequest } from './ollama-emulator.js';

describe('OllamaEmulator generation', { timeout: 15_000 }, () => {
  const emu = new OllamaEmulator();
  let url = '';
  before(async () => {
    url = await emu.start();
  });
  afterEach(() => emu.set({ tokenIntervalMs: 2, firstByteDelayMs: 0, defaultTokens: 8, failAfterTokens: undefined }));
  after(() => emu.close());

  it('streams /api/generate as NDJSON, one line per token, then a done line with statistics', async () => {
    const res = await sendTimed(url, { path: '/api/generate', body: { model: 'llama3.2', prompt: 'count', options: { num_predict: 5 } } });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/x-ndjson');
    assert.equal(res.headers['content-length'], undefined);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    const lines = res.pieces.map((p) => JSON.parse(p.text));
    assert.equal(lines.length, 6);
    lines.slice(0, 5).forEach((l, i) => {
      assert.equal(l.model, 'llama3.2');
      assert.equal(l.response, `tok${i} `);
      assert.equal(l.done, false);
      assert.ok(!Number.isNaN(Date.parse(l.created_at)));
    });
    const last = lines[5];
    assert.equal(last.done, true);
    assert.equal(last.done_reason, 'stop');
    assert.equal(last.response, '');
    assert.ok(Array.isArray(last.context) && last.context.length > 0);
    assert.equal(last.eval_count, 5);
    for (const k of ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration']) {
      assert.ok(Number.isInteger(last[k]) && last[k] > 0, k);
    }
    assert.ok(last.eval_duration >= 4 * 2 * 1e6 * 0.5, 'eval_duration is in nanoseconds');
    assert.equal(lines.slice(0, 5).map((l) => l.response).join(''), expectedText(5));
  });

  it('streams /api/chat with message deltas and uses defaultTokens without num_predict', async () => {
    emu.set({ defaultTokens: 4 });
    const res = await sendTimed(url, { path: '/api/chat', body: { model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'hi' }] } });
    const lines = res.pieces.map((p) => JSON.parse(p.text));
    assert.equal(lines.length, 5);
    assert.deepEqual(lines.slice(0, 4).map((l) => l.message), [0, 1, 2, 3].map((i) => ({ role: 'assistant', content: `tok${i} ` })));
    assert.equal(lines[4].done, true);
    assert.equal(lines[4].done_reason, 'stop');
    assert.deepEqual(lines[4].message, { role: 'assistant', content: '' });
    assert.equal('context' in lines[4], false);
  });

  it('answers "stream": false with a single JSON object holding the whole text', async () => {
    const gen = await send(url, { path: '/api/generate', body: { model: 'llama3.2', prompt: 'x', stream: false, options: { num_predict: 3 } } });
    assert.equal(gen.headers['content-type'], 'application/json; charset=utf-8');
    const g = gen.json();
    assert.equal(g.response, 'tok0 tok1 tok2 ');
    assert.equal(g.done, true);
    assert.equal(g.done_reason, 'stop');
    const chat = (await send(url, { path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: false } })).json();
    assert.equal(chat.message.content, expectedText(8));
    assert.equal(chat.eval_count, 8);
  });

  it('loads the model for an empty prompt or no messages (done_reason "load")', async () => {
    const gen = (await send(url, { path: '/api/generate', body: { model: 'llama3.2' } })).json();
    assert.equal(gen.done_reason, 'load');
    const chat = (await send(url, { path: '/api/chat', body: { model: 'llama3.2', messages: [] } })).json();
    assert.equal(chat.done_reason, 'load');
  });

  it('paces tokens tokenIntervalMs apart, each line arriving on its own', async () => {
    emu.set({ tokenIntervalMs: 50 });
    const res = await sendTimed(url, { path: '/api/generate', body: { model: 'llama3.2', prompt: 'x', options: { num_predict: 5 } } });
    const tokens = res.pieces.slice(0, 5);
    const spread = (tokens.at(-1)?.at ?? 0) - (tokens[0]?.at ?? 0);
    // A lower bound only (a slow reader can only spread them more): written in one burst at the
    // end, they would arrive together.
    assert.equal(tokens.length, 5, 'five lines');
    assert.ok(spread >= 180, `5 tokens at 50 ms spread over ${spread.toFixed(0)} ms, expected >= ~200`);
  });

  it('delays the response headers by firstByteDelayMs (model load) and reports it as load_duration', async () => {
    emu.set({ firstByteDelayMs: 300 });
    const res = await sendTimed(url, { path: '/api/generate', body: { model: 'llama3.2', prompt: 'x', options: { num_predict: 2 } } });
    assert.ok(res.headersAt >= 250, `headers after ${res.headersAt.toFixed(0)} ms`);
    const last = JSON.parse(res.pieces.at(-1)?.text ?? '{}');
    assert.ok(last.load_duration >= 250e6, `load_duration ${last.load_duration}`);
    const v1 = await sendTimed(url, { path: '/v1/chat/completions', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 1 } }, '\n\n');
    assert.ok(v1.headersAt >= 250, `/v1 headers after ${v1.headersAt.toFixed(0)} ms`);
    // With a load that never ends, other endpoints still answer (else the test's timeout).
    emu.set({ firstByteDelayMs: 600_000 });
    const tags = await sendTimed(url, { path: '/api/tags' });
    assert.equal(tags.status, 200, 'other endpoints are not delayed');
  });

  it('with failAfterTokens, streams that many tokens then an {"error"} line and ends', async () => {
    emu.set({ failAfterTokens: 3 });
    for (const [path, body] of [
      ['/api/generate', { model: 'llama3.2', prompt: 'x', options: { num_predict: 10 } }],
      ['/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }],
    ] as const) {
      const res = await sendTimed(url, { path, body });
      assert.equal(res.status, 200);
      const lines = res.pieces.map((p) => JSON.parse(p.text));
      assert.equal(lines.length, 4, path);
      assert.equal(lines.slice(0, 3).every((l) => l.done === false), true);
      assert.deepEqual(Object.keys(lines[3]), ['error']);
      assert.match(lines[3].error, /failAfterTokens/);
      assert.equal(emu.requests.at(-1)?.tokensSent, 3);
    }
  });

  it('with failAfterTokens, answers a non-streaming request (or a failure before any token) 500 {"error"}', async () => {
    emu.set({ failAfterTokens: 2 });
    const whole = await send(url, { path: '/api/generate', body: { model: 'llama3.2', prompt: 'x', stream: false } });
    assert.equal(whole.status, 500);
    assert.match(whole.json().error, /after 2 tokens/);
    emu.set({ failAfterTokens: 0 });
    const early = await send(url, { path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] } });
    assert.equal(early.status, 500);
    assert.equal(early.headers['content-type'], 'application/json; charset=utf-8');
    assert.match(early.json().error, /after 0 tokens/);
  });

  it('stops generating at once when the caller goes away mid-stream, and records the abort', async () => {
    emu.set({ tokenIntervalMs: 40 });
    const aborts: RecordedRequest[] = [];
    emu.once('abort', (r) => aborts.push(r));
    const { req, res } = await open(url, { path: '/api/generate', body: { model: 'llama3.2', prompt: 'long', options: { num_predict: 200 } } });
    const lines = await readLines(res, 3);
    assert.equal(lines.length, 3);
    const record = await emu.waitFor((r) => r.path === '/api/generate' && r.tokensSent >= 3 && !r.aborted && r.finishedAt === undefined);
    assert.equal(emu.activeGenerations(), 1);
    req.destroy();
    const aborted = await emu.waitFor((r) => r.id === record.id && r.aborted, 30_000);
    assert.equal(aborted.finishedAt, undefined);
    assert.ok(aborted.abortedAt !== undefined);
    const tokensAtAbort = aborted.tokensSent;
    assert.ok(tokensAtAbort < 200, `tokens at abort: ${tokensAtAbort}: stopped before the end`);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(aborted.tokensSent, tokensAtAbort, 'no token after the abort');
    assert.equal(emu.activeGenerations(), 0);
    assert.ok(emu.aborted.includes(aborted));
    assert.deepEqual(aborts, [aborted]);
  });

  it('records an abort during the model load, before any token', async () => {
    // A load longer than the wait below: the abort must be noticed during it, not after it.
    emu.set({ firstByteDelayMs: 600_000 });
    const { req, response } = start(url, { path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] } });
    response.catch(() => undefined); // the hang-up rejects it
    const record = await emu.waitFor((r) => r.path === '/api/chat' && r.finishedAt === undefined && !r.aborted && emu.activeGenerations() === 1);
    assert.equal(record.status, undefined, 'no headers during the load');
    req.destroy();
    const aborted = await emu.waitFor((r) => r.id === record.id && r.aborted, 60_000);
    assert.equal(aborted.tokensSent, 0);
    assert.equal(emu.activeGenerations(), 0);
  });

  it('counts concurrent generations', async () => {
    emu.set({ tokenIntervalMs: 30 });
    const streams = await Promise.all([1, 2].map(() => open(url, { path: '/api/generate', body: { model: 'llama3.2', prompt: 'x', options: { num_predict: 100 } } })));
    await Promise.all(streams.map(({ res }) => readLines(res, 1)));
    assert.equal(emu.activeGenerations(), 2);
    const ids = streams.length;
    for (const s of streams) s.req.destroy();
    await emu.waitFor(() => emu.activeGenerations() === 0 && emu.aborted.length >= ids, 30_000);
    assert.equal(emu.activeGenerations(), 0);
  });

  it('takes a chat with a large base64 image and records its exact size and digest', async () => {
    const image = Buffer.alloc(6 * 1024 * 1024, 7).toString('base64');
    const body = JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'what is this?', images: [image] }] });
    const res = await send(url, { path: '/api/chat', body, headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    assert.equal(res.json().message.content, expectedText(8));
    const r = emu.requests.at(-1);
    assert.equal(r?.bodyBytes, Buffer.byteLength(body));
    assert.equal(r?.bodySha256, createHash('sha256').update(body).digest('hex'));
  });
});
