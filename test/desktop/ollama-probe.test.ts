/** The Settings "Test" button against the Ollama emulator and against things that are not Ollama. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { testOllama } from '../../main/ollama-probe.js';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';

let emulator: OllamaEmulator;
let notOllama: http.Server;
let notOllamaUrl: string;
before(async () => {
  emulator = new OllamaEmulator();
  await emulator.start();
  notOllama = http.createServer((_req, res) => res.end('<html>router admin</html>'));
  await new Promise<void>((r) => notOllama.listen(0, '127.0.0.1', r));
  notOllamaUrl = `http://127.0.0.1:${(notOllama.address() as net.AddressInfo).port}`;
});
after(async () => {
  await emulator.close();
  notOllama.close();
});

test('success: Ollama\'s version and how many models it has', async () => {
  const r = await testOllama(emulator.url);
  assert.equal(r.ok, true);
  if (r.ok) {
    assert.match(r.version, /^\d+\.\d+\.\d+/);
    assert.equal(r.modelCount, (await (await fetch(`${emulator.url}/api/tags`)).json() as { models: unknown[] }).models.length);
  }
});

test('failures say exactly what is wrong', async () => {
  const closed = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const cases: Array<[string, RegExp]> = [
    ['ollama', /not a URL/],
    ['ftp://127.0.0.1:11434', /http:\/\/ or https:\/\//],
    [`http://127.0.0.1:${closed}`, /refused the connection: is Ollama running/],
    [notOllamaUrl, /not like Ollama/],
  ];
  for (const [url, pattern] of cases) {
    const r = await testOllama(url);
    assert.equal(r.ok, false, url);
    if (!r.ok) assert.match(r.error, pattern, url);
  }
});
