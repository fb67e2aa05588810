/** `npm run start:headless`, the README's main job, run as a user runs it. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Ollama } from 'ollama';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { startHeadless } from './headless-process.js';

describe('start:headless on the in-process runtime', () => {
  let emulator: OllamaEmulator;
  before(async () => {
    emulator = new OllamaEmulator({ tokenIntervalMs: 10 });
    await emulator.start();
  });
  after(() => emulator.close());

  test('prints one JSON line with an endpoint and token that any Ollama client can use, then stops cleanly', async () => {
    const run = await startHeadless(['--runtime', 'process', '--ollama-url', emulator.url]);
    try {
      assert.match(run.endpoint, /^http:\/\/127\.0\.0\.1:\d+\/ollama$/);
      const ollama = new Ollama({ host: run.endpoint, headers: { authorization: `Bearer ${run.token}` } });
      const tags = await ollama.list();
      assert.ok(tags.models.length > 0);
      let text = '';
      for await (const p of await ollama.generate({ model: 'llama3.2', prompt: 'x', stream: true, options: { num_predict: 5 } })) text += p.response;
      assert.equal(text.trim(), 'tok0 tok1 tok2 tok3 tok4');
    } finally {
      const code = await run.stop();
      assert.equal(code, 0, `exit code; stderr:\n${run.stderr().slice(-1000)}`);
    }
    assert.equal(run.stdout().trim().split('\n').length, 1, 'stdout holds exactly one line: logs go to stderr');
    assert.ok(!run.stderr().includes(run.token), 'the token is not logged');
  });

  test('bad options fail at once with a message', () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/start-headless.ts', '--port', 'eighty'], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /PORT \(--port\)="eighty"/);
    const r2 = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/start-headless.ts', '--allow', 'format-disk'], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r2.status, 2);
    assert.match(r2.stderr, /unknown model management endpoint "format-disk"/);
  });
});
