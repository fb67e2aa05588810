/** Streams through the tunnel: concurrency, cancellation, slow starts, large bodies. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Ollama } from 'ollama';
import { failureMessage } from '@cloudtolocalllm/ollama-emulator/generation';
import { readNdjson, startStack, waitUntil, type Stack } from './harness.js';

describe('streaming through the tunnel', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      emulator: { tokenIntervalMs: 5 },
      bridge: { policy: { allowManagement: new Set(['blobs']) } },
    });
  });
  after(() => stack.close());

  test('50 concurrent streams all complete, each with its own tokens in order', async () => {
    const ollama = new Ollama({ host: stack.url, headers: stack.auth });
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const n = 20 + i;
        let text = '';
        for await (const part of await ollama.generate({ model: 'llama3.2', prompt: `p${i}`, stream: true, options: { num_predict: n } })) {
          text += part.response;
        }
        return { n, text: text.trim() };
      }),
    );
    for (const { n, text } of results) {
      assert.equal(text, Array.from({ length: n }, (_, k) => `tok${k}`).join(' '));
    }
    await waitUntil(() => stack.proxy.health().activeStreams === 0, 'no stream is left open');
  });

  test('a client that disconnects aborts the generation on Ollama', async () => {
    stack.emulator.set({ tokenIntervalMs: 50 });
    try {
      const controller = new AbortController();
      const res = await fetch(`${stack.url}/api/generate`, {
        method: 'POST',
        headers: stack.auth,
        body: JSON.stringify({ model: 'llama3.2', prompt: 'long', options: { num_predict: 1000 } }),
        signal: controller.signal,
      });
      const reader = res.body!.getReader();
      await reader.read();
      controller.abort();
      const aborted = await stack.emulator.waitFor((r) => r.path === '/api/generate' && r.aborted, 3_000);
      assert.ok(aborted.tokensSent < 1000, `generation stopped after ${aborted.tokensSent} tokens`);
      const before = aborted.tokensSent;
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(aborted.tokensSent, before, 'no token is generated after the abort');
      await waitUntil(() => stack.bridge.counters.activeStreams === 0, 'the bridge closed the stream');
    } finally {
      stack.emulator.set({ tokenIntervalMs: 5 });
    }
  });

  test('a slow first byte (model load) is waited for, not timed out', async () => {
    stack.emulator.set({ firstByteDelayMs: 1_500 });
    try {
      const res = await fetch(`${stack.url}/api/chat`, {
        method: 'POST',
        headers: stack.auth,
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], options: { num_predict: 2 } }),
      });
      assert.equal(res.status, 200);
      const lines = (await readNdjson(res)) as Array<{ done: boolean }>;
      assert.equal(lines.at(-1)?.done, true);
    } finally {
      stack.emulator.set({ firstByteDelayMs: 0 });
    }
  });

  test('an error Ollama reports mid-stream reaches the client as Ollama sent it', async () => {
    stack.emulator.set({ failAfterTokens: 3 });
    try {
      // On the wire: the three tokens, then Ollama's own error line, and no "done" line.
      const res = await fetch(`${stack.url}/api/generate`, {
        method: 'POST',
        headers: stack.auth,
        body: JSON.stringify({ model: 'llama3.2', prompt: 'x', options: { num_predict: 10 } }),
      });
      assert.equal(res.status, 200);
      const lines = (await readNdjson(res)) as Array<{ response?: string; done?: boolean; error?: string }>;
      assert.deepEqual(lines.map((l) => l.response), ['tok0 ', 'tok1 ', 'tok2 ', undefined]);
      assert.deepEqual(lines.at(-1), { error: failureMessage(3) });
      assert.ok(!lines.some((l) => l.done), 'no line claims the answer is complete');

      // And the ollama client shows exactly that message after the tokens before it.
      const ollama = new Ollama({ host: stack.url, headers: stack.auth });
      let got = 0;
      await assert.rejects(
        async () => {
          for await (const _ of await ollama.generate({ model: 'llama3.2', prompt: 'x', stream: true, options: { num_predict: 10 } })) got += 1;
        },
        (e: Error) => e.message === failureMessage(3),
      );
      assert.equal(got, 3, 'the tokens before the error arrived');
    } finally {
      stack.emulator.set({ failAfterTokens: undefined });
    }
  });

  test('a 200 MB blob upload streams through without being held in memory', async () => {
    const size = 200 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const hash = createHash('sha256');
    for (let i = 0; i < size / chunk.length; i++) hash.update(chunk);
    const digest = `sha256:${hash.digest('hex')}`;
    let sent = 0;
    let peakArrayBuffers = 0;
    const baseline = process.memoryUsage().arrayBuffers;
    const sampler = setInterval(() => {
      peakArrayBuffers = Math.max(peakArrayBuffers, process.memoryUsage().arrayBuffers - baseline);
    }, 5);
    const body = new Readable({
      read() {
        if (sent >= size) this.push(null);
        else {
          sent += chunk.length;
          this.push(chunk);
        }
      },
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${stack.url}/api/blobs/${digest}`, {
        method: 'POST',
        headers: { ...stack.auth, 'content-type': 'application/octet-stream', 'content-length': size },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      body.pipe(req);
    });
    clearInterval(sampler);
    assert.equal(status, 201, 'Ollama got every byte: the digest matched');
    const rec = stack.emulator.requests.findLast((r) => r.path.startsWith('/api/blobs/'));
    assert.equal(rec?.bodyBytes, size);
    assert.ok(peakArrayBuffers < 64 * 1024 * 1024, `peak buffer memory ${(peakArrayBuffers / 2 ** 20).toFixed(1)} MiB stays far below the 200 MiB body`);
  });
});
