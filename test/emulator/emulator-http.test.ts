// The emulator's plain HTTP behaviour: routes, shapes, errors, the two 403 checks, the record.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { send } from './http-test-client.js';
import { OllamaEmulator, type RecordedRequest } from './ollama-emulator.js';

/** One raw HTTP/1.x exchange over a socket, for requests node:http cannot make (no Host, empty Host). */
function rawExchange(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(head));
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

describe('OllamaEmulator over raw HTTP', { timeout: 15_000 }, () => {
  const emu = new OllamaEmulator({ hostname: 'test-box', origins: ['https://app.example.com'], version: '0.9.9' });
  let url = '';
  before(async () => {
    url = await emu.start();
  });
  after(() => emu.close());

  describe('basics', () => {
    it('answers GET and HEAD / with "Ollama is running"', async () => {
      const get = await send(url, { path: '/' });
      assert.equal(get.status, 200);
      assert.equal(get.text, 'Ollama is running');
      assert.match(String(get.headers['content-type']), /^text\/plain/);
      const head = await send(url, { method: 'HEAD', path: '/' });
      assert.equal(head.status, 200);
      assert.equal(head.text, '');
    });

    it('answers unknown routes and wrong methods 404 "404 page not found" in text/plain', async () => {
      for (const [method, path] of [['GET', '/nope'], ['POST', '/api/tags'], ['GET', '/api/generate'], ['PUT', '/api/chat'], ['GET', '/v1/chat/completions'], ['HEAD', '/api/ps']] as const) {
        const res = await send(url, { method, path });
        assert.equal(res.status, 404, `${method} ${path}`);
        assert.equal(res.headers['content-type'], 'text/plain');
        if (method !== 'HEAD') assert.equal(res.text, '404 page not found');
      }
    });

    it('redirects a trailing slash like gin (301 for GET, 307 otherwise)', async () => {
      const get = await send(url, { path: '/api/tags/?x=1' });
      assert.equal(get.status, 301);
      assert.equal(get.headers.location, '/api/tags?x=1');
      const post = await send(url, { method: 'POST', path: '/api/chat/', body: {} });
      assert.equal(post.status, 307);
      assert.equal(post.headers.location, '/api/chat');
    });

    it('reports its version', async () => {
      const res = await send(url, { path: '/api/version' });
      assert.deepEqual(res.json(), { version: '0.9.9' });
      assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
    });

    it('lists models with realistic details', async () => {
      const { models } = (await send(url, { path: '/api/tags' })).json();
      const names = models.map((m: { name: string }) => m.name);
      for (const n of ['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']) assert.ok(names.includes(n), n);
      const llama = models.find((m: { name: string }) => m.name === 'llama3.2:latest');
      assert.equal(llama.model, 'llama3.2:latest');
      assert.match(llama.digest, /^[0-9a-f]{64}$/);
      assert.ok(llama.size > 1e9);
      assert.ok(!Number.isNaN(Date.parse(llama.modified_at)));
      assert.deepEqual(llama.details, { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '3.2B', quantization_level: 'Q4_K_M' });
    });

    it('shows a model, and answers 404 / 400 for unknown / missing', async () => {
      const res = await send(url, { path: '/api/show', body: { model: 'llama3.2' } });
      assert.equal(res.status, 200);
      const show = res.json();
      for (const key of ['modelfile', 'parameters', 'template', 'details', 'model_info', 'capabilities']) assert.ok(key in show, key);
      assert.equal(show.model_info['llama.context_length'], 131072);
      assert.deepEqual(show.capabilities, ['completion', 'tools']);
      const missing = await send(url, { path: '/api/show', body: { model: 'ghost' } });
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.json(), { error: "model 'ghost' not found" });
      assert.deepEqual((await send(url, { path: '/api/show', body: {} })).json(), { error: 'model is required' });
    });

    it('lists running models in /api/ps after use, and unloads with keep_alive 0', async () => {
      await send(url, { path: '/api/generate', body: { model: 'qwen2.5:0.5b', prompt: 'hi', stream: false, options: { num_predict: 1 } } });
      let ps = (await send(url, { path: '/api/ps' })).json();
      const qwen = ps.models.find((m: { name: string }) => m.name === 'qwen2.5:0.5b');
      assert.ok(qwen, 'qwen listed');
      assert.ok(Date.parse(qwen.expires_at) > Date.now());
      assert.equal(typeof qwen.size_vram, 'number');
      const unload = (await send(url, { path: '/api/generate', body: { model: 'qwen2.5:0.5b', keep_alive: 0 } })).json();
      assert.equal(unload.done_reason, 'unload');
      ps = (await send(url, { path: '/api/ps' })).json();
      assert.ok(!ps.models.some((m: { name: string }) => m.name === 'qwen2.5:0.5b'));
    });

    it('copies (200, empty) and deletes (DELETE with a body: 200 empty, then 404)', async () => {
      const copy = await send(url, { path: '/api/copy', body: { source: 'llama3.2', destination: 'my-llama' } });
      assert.equal(copy.status, 200);
      assert.equal(copy.text, '');
      assert.ok(emu.models.get('my-llama:latest'));
      assert.equal((await send(url, { path: '/api/copy', body: { source: 'ghost', destination: 'x' } })).status, 404);
      const del = await send(url, { method: 'DELETE', path: '/api/delete', body: { model: 'my-llama' } });
      assert.equal(del.status, 200);
      assert.equal(del.text, '');
      const again = await send(url, { method: 'DELETE', path: '/api/delete', body: { model: 'my-llama' } });
      assert.equal(again.status, 404);
      assert.deepEqual(again.json(), { error: "model 'my-llama' not found" });
    });

    it('embeds a string or a list of strings, deterministically', async () => {
      const one = (await send(url, { path: '/api/embed', body: { model: 'nomic-embed-text', input: 'hello' } })).json();
      assert.equal(one.model, 'nomic-embed-text');
      assert.equal(one.embeddings.length, 1);
      assert.equal(one.embeddings[0].length, 768);
      assert.ok(Math.abs(Math.hypot(...one.embeddings[0]) - 1) < 1e-3, 'unit length');
      for (const k of ['total_duration', 'load_duration', 'prompt_eval_count']) assert.equal(typeof one[k], 'number', k);
      const many = (await send(url, { path: '/api/embed', body: { model: 'nomic-embed-text', input: ['hello', 'world'] } })).json();
      assert.equal(many.embeddings.length, 2);
      assert.deepEqual(many.embeddings[0], one.embeddings[0]);
      assert.notDeepEqual(many.embeddings[1], one.embeddings[0]);
      assert.equal((await send(url, { path: '/api/embed', body: { model: 'nomic-embed-text', input: 42 } })).status, 400);
      const old = (await send(url, { path: '/api/embeddings', body: { model: 'nomic-embed-text', prompt: 'hello' } })).json();
      assert.equal(old.embedding.length, 768);
    });
  });

  describe('errors', () => {
    it('answers bad JSON with 400 {"error"}', async () => {
      for (const body of ['{bad', '[1,2]', '{"model": "llama3.2", "prompt": ']) {
        const res = await send(url, { path: '/api/generate', body, headers: { 'content-type': 'application/json' } });
        assert.equal(res.status, 400, body);
        assert.equal(typeof res.json().error, 'string');
      }
      assert.deepEqual((await send(url, { path: '/api/chat', body: '' })).json(), { error: 'missing request body' });
      assert.equal((await send(url, { path: '/api/generate', body: { model: 7 } })).status, 400);
    });

    it('answers a missing model with 400 "model is required"', async () => {
      for (const path of ['/api/generate', '/api/chat', '/api/embed', '/api/pull']) {
        const res = await send(url, { path, body: { prompt: 'x' } });
        assert.equal(res.status, 400, path);
        assert.deepEqual(res.json(), { error: 'model is required' });
      }
    });

    it('answers an unknown model with 404 and Ollama\'s wording', async () => {
      for (const path of ['/api/generate', '/api/chat', '/api/embed']) {
        const res = await send(url, { path, body: { model: 'x', prompt: 'hi', messages: [{ role: 'user', content: 'hi' }], input: 'hi' } });
        assert.equal(res.status, 404, path);
        assert.equal(res.text, '{"error":"model \\"x\\" not found, try pulling it first"}');
      }
    });

    it('refuses generation with an embedding-only model', async () => {
      const res = await send(url, { path: '/api/generate', body: { model: 'nomic-embed-text', prompt: 'hi' } });
      assert.equal(res.status, 400);
      assert.deepEqual(res.json(), { error: '"nomic-embed-text" does not support generate' });
    });

    it('accepts and ignores any Authorization header', async () => {
      assert.equal((await send(url, { path: '/api/tags', headers: { authorization: 'Bearer whatever' } })).status, 200);
      assert.equal((await send(url, { path: '/v1/models', headers: { authorization: 'Basic Zm9vOmJhcg==' } })).status, 200);
    });
  });

  describe('Host check (listening on loopback)', () => {
    const allowed = ['localhost', 'localhost:11434', '127.0.0.1:11434', '[::1]:11434', '0.0.0.0:11434', '192.168.1.20:11434', 'test-box', 'TEST-BOX:11434', 'foo.localhost', 'nas.local', 'host.docker.internal:11434'];
    const refused = ['cloud.example.com', 'cloud.example.com:443', 'ollama.example.com:11434', '8.8.8.8', '[::1]', '100.64.1.2:11434'];
    for (const host of allowed) {
      it(`passes Host ${host}`, async () => {
        const res = await send(url, { path: '/api/version', headers: { host } });
        assert.equal(res.status, 200);
      });
    }
    for (const host of refused) {
      it(`answers 403 with an empty body to Host ${host}`, async () => {
        for (const path of ['/api/version', '/api/chat', '/nope']) {
          const res = await send(url, { path, headers: { host }, ...(path === '/api/chat' ? { body: { model: 'llama3.2' } } : {}) });
          assert.equal(res.status, 403, path);
          assert.equal(res.text, '');
          assert.equal(res.headers['content-type'], undefined);
        }
      });
    }

    it('passes an empty Host, and answers 400 to an HTTP/1.1 request without Host (Go net/http)', async () => {
      const empty = await rawExchange(emu.port, 'GET /api/version HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n');
      assert.match(empty, /^HTTP\/1.1 200 /);
      const none = await rawExchange(emu.port, 'GET /api/version HTTP/1.1\r\nConnection: close\r\n\r\n');
      assert.match(none, /^HTTP\/1.1 400 /);
      assert.match(none, /missing required Host header/);
    });

    it('does not check Host when listening on all interfaces', async (t) => {
      const open = new OllamaEmulator();
      let openUrl: string;
      try {
        openUrl = await open.start(0, '0.0.0.0');
      } catch (e) {
        assert.ok(process.env['CI'] !== 'true', `CI machines can listen on 0.0.0.0: ${String(e)}`);
        t.skip('cannot listen on 0.0.0.0 here');
        return;
      }
      try {
        assert.equal((await send(openUrl, { path: '/api/version', headers: { host: 'cloud.example.com' } })).status, 200);
      } finally {
        await open.close();
      }
    });
  });

  describe('Origin check (CORS)', () => {
    it('answers 403 with an empty body to a foreign Origin, before anything else', async () => {
      for (const origin of ['https://cloud.example.com', 'http://evil.com', 'null']) {
        const res = await send(url, { path: '/api/tags', headers: { origin } });
        assert.equal(res.status, 403, origin);
        assert.equal(res.text, '');
        assert.equal(res.headers['access-control-allow-origin'], undefined);
      }
      const res = await send(url, { path: '/api/generate', headers: { origin: 'https://cloud.example.com' }, body: { model: 'llama3.2', prompt: 'x' } });
      assert.equal(res.status, 403);
    });

    it('adds CORS headers for allowed origins (defaults and the origins option)', async () => {
      for (const origin of ['http://localhost:5173', 'http://127.0.0.1', 'app://obsidian.md', 'https://app.example.com']) {
        const res = await send(url, { path: '/api/tags', headers: { origin } });
        assert.equal(res.status, 200, origin);
        assert.equal(res.headers['access-control-allow-origin'], origin);
        assert.equal(res.headers['vary'], 'Origin');
      }
    });

    it('answers an allowed preflight 204 with CORS headers, a foreign one 403', async () => {
      const ok = await send(url, { method: 'OPTIONS', path: '/api/chat', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
      assert.equal(ok.status, 204);
      assert.equal(ok.headers['access-control-allow-origin'], 'http://localhost:3000');
      assert.equal(ok.headers['access-control-allow-methods'], 'GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS');
      assert.match(String(ok.headers['access-control-allow-headers']), /Content-Type/);
      assert.equal(ok.headers['access-control-max-age'], '43200');
      const bad = await send(url, { method: 'OPTIONS', path: '/api/chat', headers: { origin: 'https://cloud.example.com', 'access-control-request-method': 'POST' } });
      assert.equal(bad.status, 403);
    });

    it('answers OPTIONS without Origin like Ollama: 204 for a host name, 404 for an IP host', async () => {
      assert.equal((await send(url, { method: 'OPTIONS', path: '/api/chat', headers: { host: 'localhost:11434' } })).status, 204);
      assert.equal((await send(url, { method: 'OPTIONS', path: '/api/chat' })).status, 404);
    });
  });

  describe('the record', () => {
    it('records every request with path, headers, body size and digest, status and timing', async () => {
      const seen: RecordedRequest[] = [];
      const finished: RecordedRequest[] = [];
      const onRequest = (r: RecordedRequest) => seen.push(r);
      const onFinish = (r: RecordedRequest) => finished.push(r);
      emu.on('request', onRequest);
      emu.on('finish', onFinish);
      const body = JSON.stringify({ model: 'llama3.2' });
      await send(url, { path: '/api/show?verbose=true', body, headers: { 'content-type': 'application/json', 'x-trace': 'abc' } });
      emu.off('request', onRequest);
      emu.off('finish', onFinish);
      const r = emu.requests.at(-1);
      assert.ok(r);
      assert.equal(seen.at(-1), r);
      assert.equal(finished.at(-1), r);
      assert.equal(r.method, 'POST');
      assert.equal(r.path, '/api/show?verbose=true');
      assert.equal(r.headers['x-trace'], 'abc');
      assert.equal(r.bodyBytes, Buffer.byteLength(body));
      const { createHash } = await import('node:crypto');
      assert.equal(r.bodySha256, createHash('sha256').update(body).digest('hex'));
      assert.equal(r.status, 200);
      assert.equal(r.aborted, false);
      assert.ok(r.finishedAt !== undefined && r.finishedAt >= r.startedAt);
      assert.ok(emu.requests.every((q, i) => i === 0 || q.id > (emu.requests[i - 1]?.id ?? 0)), 'arrival order');
    });

    it('waitFor resolves on a past record and rejects with a clear error on timeout', async () => {
      const past = await emu.waitFor((r) => r.path === '/api/version');
      assert.equal(past.path, '/api/version');
      await assert.rejects(emu.waitFor((r) => r.path === '/never', 50), /no request matched within 50 ms/);
    });

    it('refuses invalid behaviour values', () => {
      assert.throws(() => emu.set({ tokenIntervalMs: -1 }), RangeError);
      assert.throws(() => emu.set({ defaultTokens: 1.5 }), RangeError);
      assert.throws(() => new OllamaEmulator({ pullChunks: Number.NaN }), RangeError);
    });
  });
});

describe('OllamaEmulator lifecycle', { timeout: 15_000 }, () => {
  it('fails pending waitFor calls on close, and can start again', async () => {
    const emu = new OllamaEmulator();
    const first = await emu.start();
    const pending = emu.waitFor((r) => r.path === '/never', 10_000);
    await emu.close();
    await assert.rejects(pending, /closed/);
    assert.equal(emu.url, first, 'url still readable after close');
    await assert.rejects(send(first, { path: '/' }));
    const second = await emu.start();
    assert.equal((await send(second, { path: '/' })).status, 200);
    await emu.close();
  });
});
