import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalModelName, keepAliveMs, modelNamespace, ModelRegistry } from './models.js';

describe('model names', () => {
  it('are normalised as Ollama does: implied :latest, default registry and namespace, any case', () => {
    assert.equal(canonicalModelName('llama3.2'), 'llama3.2:latest');
    assert.equal(canonicalModelName('registry.ollama.ai/library/llama3.2:latest'), 'llama3.2:latest');
    assert.equal(canonicalModelName('hf.co/user/model:Q4_K_M'), 'hf.co/user/model:Q4_K_M');
    assert.equal(canonicalModelName('localhost:5000/model'), 'localhost:5000/model:latest');
    const registry = new ModelRegistry();
    assert.equal(registry.get('LLAMA3.2')?.name, 'llama3.2:latest');
    assert.equal(registry.get('qwen2.5'), undefined, 'qwen2.5 means qwen2.5:latest, which is not there');
    assert.equal(modelNamespace('llama3.2'), 'library');
    assert.equal(modelNamespace('jmorgan/custom:7b'), 'jmorgan');
  });
});

describe('keep_alive', () => {
  it('reads seconds or Go durations', () => {
    assert.equal(keepAliveMs(0), 0);
    assert.equal(keepAliveMs('0'), 0);
    assert.equal(keepAliveMs(30), 30_000);
    assert.equal(keepAliveMs('5m'), 300_000);
    assert.equal(keepAliveMs('1h30m'), 5_400_000);
    assert.equal(keepAliveMs('-1'), -1000);
    assert.equal(keepAliveMs('soon'), undefined);
    assert.equal(keepAliveMs(undefined), undefined);
  });
});

describe('ModelRegistry', () => {
  it('adds, copies, deletes and tracks loaded models and blobs', () => {
    const registry = new ModelRegistry();
    const pulled = registry.add('mistral');
    assert.equal(pulled.name, 'mistral:latest');
    assert.ok(registry.copy('mistral', 'mine:v1'));
    assert.equal(registry.get('mine:v1')?.details.family, 'llama');
    assert.equal(registry.copy('ghost', 'x'), undefined);
    registry.touch(pulled, '10m');
    assert.deepEqual(registry.running().map((m) => m.entry.name), ['mistral:latest']);
    registry.touch(pulled, 0);
    assert.deepEqual(registry.running(), []);
    assert.equal(registry.delete('mistral'), true);
    assert.equal(registry.delete('mistral'), false);
    registry.addBlob('sha256:abc');
    assert.equal(registry.hasBlob('sha256:abc'), true);
  });
});
