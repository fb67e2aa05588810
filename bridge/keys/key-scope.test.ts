import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { findRoute } from '../ingress/ollama-routes.js';
import { bodyRefusal, filterModelList, keyRefusal, modelAllowed } from './key-scope.js';
import type { KeyDefinition } from './key-store.js';

const key: KeyDefinition = { id: 'abcdefgh', name: 'k', verifier: '0'.repeat(64), models: ['llama3.2', 'qwen2.5:0.5b'], allow: ['pull'], createdAt: 0 };
const route = (p: string) => findRoute(p)!;

describe('what a key may do', () => {
  test('models: an untagged name means :latest', () => {
    assert.ok(modelAllowed(key.models, 'llama3.2:latest'));
    assert.ok(!modelAllowed(key.models, 'qwen2.5:7b'));
    assert.ok(modelAllowed(undefined, 'anything'));
  });
  test('management needs the key and the computer', () => {
    const none = { allowManagement: new Set<never>() };
    assert.equal(keyRefusal(key, route('/api/pull'), '/api/pull', none)?.code, 'policy');
    assert.equal(keyRefusal(key, route('/api/pull'), '/api/pull', { allowManagement: new Set(['pull' as const]) }), undefined);
    assert.equal(keyRefusal(key, route('/api/delete'), '/api/delete', { allowManagement: new Set(['delete' as const]) })?.code, 'key-scope');
    assert.equal(keyRefusal({ ...key, expiresAt: 1 }, route('/api/tags'), '/api/tags', none)?.code, 'key-expired');
    assert.equal(keyRefusal(undefined, route('/api/tags'), '/api/tags', none)?.status, 401);
  });
  test('bodies naming another model are refused with the allowed ones named', () => {
    const r = bodyRefusal(key, route('/api/chat'), Buffer.from('{"model":"mistral"}'));
    assert.equal(r?.status, 403);
    assert.match(r!.message, /"mistral".*"llama3\.2", "qwen2\.5:0\.5b"/);
    assert.equal(bodyRefusal(key, route('/api/chat'), Buffer.from('{"model":"llama3.2"}')), undefined);
    assert.equal(bodyRefusal(key, route('/api/copy'), Buffer.from('{"source":"llama3.2","destination":"x"}'))?.status, 403);
    assert.equal(bodyRefusal(key, route('/api/chat'), Buffer.from('{'))?.status, 400);
  });
  test('lists keep only the allowed models', () => {
    const tags = filterModelList('tags', Buffer.from(JSON.stringify({ models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest' }, { name: 'x:1', model: 'x:1' }] })), key.models!);
    assert.deepEqual(JSON.parse(tags.toString()).models.map((m: { name: string }) => m.name), ['llama3.2:latest']);
    const v1 = filterModelList('openai-models', Buffer.from(JSON.stringify({ object: 'list', data: [{ id: 'qwen2.5:0.5b' }, { id: 'x' }] })), key.models!);
    assert.deepEqual(JSON.parse(v1.toString()).data, [{ id: 'qwen2.5:0.5b' }]);
  });
});
