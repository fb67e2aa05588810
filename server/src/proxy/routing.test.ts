import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalModelName, classify, modelOfBody, pickAny, pickForModel, pickLeastBusy, unionOpenAiModels, unionTags, type Candidate } from './routing.js';

const computer = (name: string, models: string[], loaded: string[] = [], inFlight = 0): Candidate => ({
  name,
  models: new Set(models.map(canonicalModelName)),
  loaded: new Set(loaded.map(canonicalModelName)),
  inFlight,
});

test('model names compare as Ollama compares them: no tag is :latest, case does not count', () => {
  assert.equal(canonicalModelName('Llama3.2'), 'llama3.2:latest');
  assert.equal(canonicalModelName('library/qwen2.5:0.5b'), 'qwen2.5:0.5b');
  assert.equal(canonicalModelName('hf.co/org/model'), 'hf.co/org/model:latest');
  assert.equal(canonicalModelName('hf.co/org/model:Q4_K_M'), 'hf.co/org/model:q4_k_m');
});

test('a request goes only to a computer that has the model; none has it: undefined', () => {
  const cs = [computer('a', ['llama3.2']), computer('b', ['qwen2.5:0.5b'])];
  assert.equal(pickForModel(cs, 'qwen2.5:0.5b', 0)?.name, 'b');
  assert.equal(pickForModel(cs, 'llama3.2:latest', 7)?.name, 'a');
  assert.equal(pickForModel(cs, 'mistral', 0), undefined);
});

test('loaded first, even when that computer is busier', () => {
  const cs = [computer('a', ['m'], [], 0), computer('b', ['m'], ['m'], 5)];
  for (let turn = 0; turn < 4; turn++) assert.equal(pickForModel(cs, 'm', turn)?.name, 'b');
});

test('then the fewest requests in flight', () => {
  const cs = [computer('a', ['m'], ['m'], 3), computer('b', ['m'], ['m'], 1), computer('c', ['m'], ['m'], 2)];
  assert.equal(pickForModel(cs, 'm', 0)?.name, 'b');
});

test('equals take turns, whatever order they come in', () => {
  const cs = [computer('b', ['m']), computer('a', ['m']), computer('c', ['x'])];
  const picks = [0, 1, 2, 3].map((turn) => pickForModel(cs, 'm', turn)?.name);
  assert.deepEqual(picks, ['a', 'b', 'a', 'b']);
  assert.equal(pickLeastBusy([], 0), undefined);
});

test('a request any computer can answer always goes to the same one, first by name: not in turn, not by load', () => {
  const cs = [computer('c', []), computer('b', [], [], 0), computer('a', [], [], 3)];
  assert.deepEqual([0, 1, 2, 3].map(() => pickAny(cs)?.name), ['a', 'a', 'a', 'a']);
  assert.equal(pickAny([]), undefined);
});

test('routes are classified: unions, management, model-named, any', () => {
  assert.deepEqual(classify('GET', '/api/tags'), { kind: 'union', what: 'tags' });
  assert.deepEqual(classify('HEAD', '/api/ps'), { kind: 'union', what: 'ps' });
  assert.deepEqual(classify('GET', '/v1/models'), { kind: 'union', what: 'openai-models' });
  assert.deepEqual(classify('GET', '/v1/models/llama3.2:latest'), { kind: 'model', fromPath: 'llama3.2:latest' });
  for (const [m, p] of [['POST', '/api/pull'], ['DELETE', '/api/delete'], ['POST', '/api/copy'], ['POST', '/api/create'], ['POST', '/api/push'], ['HEAD', `/api/blobs/sha256:${'0'.repeat(64)}`]] as const) {
    assert.deepEqual(classify(m, p), { kind: 'management' }, p);
  }
  for (const p of ['/api/chat', '/api/generate', '/api/embed', '/api/embeddings', '/api/show', '/v1/chat/completions', '/v1/completions', '/v1/embeddings']) {
    assert.deepEqual(classify('POST', p), { kind: 'model' }, p);
  }
  assert.deepEqual(classify('GET', '/api/version'), { kind: 'any' });
  assert.deepEqual(classify('GET', '/'), { kind: 'any' });
  assert.deepEqual(classify('GET', '/not/ollama'), { kind: 'any' });
});

test('the model of a body: `model`, else /api/show\'s old `name`; none in a body that is not JSON', () => {
  assert.equal(modelOfBody(Buffer.from('{"model":"llama3.2","messages":[]}')), 'llama3.2');
  assert.equal(modelOfBody(Buffer.from('{"name":"qwen"}')), 'qwen');
  assert.equal(modelOfBody(Buffer.from('{"model":""}')), undefined);
  assert.equal(modelOfBody(Buffer.from('{"model":7}')), undefined);
  assert.equal(modelOfBody(Buffer.from('not json')), undefined);
  assert.equal(modelOfBody(Buffer.from('null')), undefined);
});

test('unions: one entry per name, the newest wins; entries without a name are dropped', () => {
  const tags = unionTags<{ name?: string; modified_at?: string; digest?: string }>([
    [{ name: 'm:latest', modified_at: '2026-01-01T00:00:00Z', digest: 'old' }, { name: 'only-a', modified_at: '2026-01-01T00:00:00Z' }],
    [{ name: 'M', modified_at: '2026-06-01T00:00:00Z', digest: 'new' }, { modified_at: 'x' }],
  ]);
  assert.deepEqual(tags.map((t) => [t.name, (t as { digest?: string }).digest]), [['M', 'new'], ['only-a', undefined]]);
  const v1 = unionOpenAiModels([[{ id: 'a:latest', created: 1 }], [{ id: 'a', created: 2 }, { id: 'b', created: 1 }, { created: 3 }]]);
  assert.deepEqual(v1, [{ id: 'a', created: 2 }, { id: 'b', created: 1 }]);
});
