import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { answerEdgeRoute, heldRequest } from './edge-route.js';

const held = (headers: Record<string, string>): ReturnType<typeof heldRequest> => heldRequest({ headers } as unknown as IncomingMessage);

test('heldRequest: the /ollama target nginx holds, and its body as declared', () => {
  assert.deepEqual(held({ 'x-original-uri': '/ollama/api/tags', 'x-original-content-length': '', 'x-original-transfer-encoding': '' }), { kind: 'ollama', target: '/api/tags', bodyBytes: 0 });
  assert.deepEqual(held({ 'x-original-uri': '/ollama/api/chat?x=1', 'x-original-content-length': '1234' }), { kind: 'ollama', target: '/api/chat?x=1', bodyBytes: 1234 });
  assert.deepEqual(held({ 'x-original-uri': '/ollama' }), { kind: 'ollama', target: '/', bodyBytes: 0 });
  assert.deepEqual(held({ 'x-original-uri': '/ollama/api/chat', 'x-original-transfer-encoding': 'chunked' }), { kind: 'ollama', target: '/api/chat', bodyBytes: 'unknown' });
  assert.deepEqual(held({ 'x-original-uri': '/ollama/api/chat', 'x-original-content-length': '12abc' }), { kind: 'ollama', target: '/api/chat', bodyBytes: 'unknown' }, 'a length that is no number');
  assert.equal(held({ 'x-original-uri': '/ollamax/api/tags' }), undefined);
  assert.equal(held({ 'x-original-uri': '/api/proxy/start' }), undefined);
  assert.equal(held({}), undefined);
});

test("heldRequest: a bridge's upgrade to /ws/bridge, with the Upgrade header nginx tells", () => {
  assert.deepEqual(held({ 'x-original-uri': '/ws/bridge', 'x-original-upgrade': 'cloudtolocalllm-h2/1' }), { kind: 'bridge', upgrade: 'cloudtolocalllm-h2/1' });
  assert.deepEqual(held({ 'x-original-uri': '/ws/bridge?x=1' }), { kind: 'bridge', upgrade: '' });
  assert.equal(held({ 'x-original-uri': '/ws/bridgex' }), undefined);
});

function recorded(): { res: ServerResponse; seen: { status?: number; headers?: Record<string, string> } } {
  const seen: { status?: number; headers?: Record<string, string> } = {};
  const res = {
    writeHead(status: number, headers: Record<string, string>) {
      seen.status = status;
      seen.headers = headers;
      return res;
    },
    end() {
      return res;
    },
  } as unknown as ServerResponse;
  return { res, seen };
}

test('answerEdgeRoute: 204 names the proxy for nginx; 403 (through) names nothing', () => {
  const direct = recorded();
  answerEdgeRoute(direct.res, { route: 'direct', endpoint: 'http://10.200.0.2:8080', secret: 's3cret-of-the-proxy', path: '/api/chat?x=1' });
  assert.equal(direct.seen.status, 204);
  assert.equal(direct.seen.headers?.['x-ctll-upstream'], '10.200.0.2:8080');
  assert.equal(direct.seen.headers?.['x-ctll-path'], '/api/chat?x=1');
  assert.equal(direct.seen.headers?.['x-ctll-authorization'], 'Bearer s3cret-of-the-proxy');
  assert.deepEqual(Object.keys(direct.seen.headers ?? {}).filter((h) => h.startsWith('x-ctll')).sort(), ['x-ctll-authorization', 'x-ctll-path', 'x-ctll-upstream'], 'no tunnel terms on a request');
  const bridge = recorded();
  answerEdgeRoute(bridge.res, { route: 'direct', endpoint: 'http://10.200.0.2:8080', secret: 's', path: '/bridge', tunnel: { address: '203.0.113.9', maxMachines: 4, expiresAt: 1_900_000_000_000 } });
  assert.equal(bridge.seen.headers?.['x-ctll-path'], '/bridge');
  assert.equal(bridge.seen.headers?.['x-ctll-client-address'], '203.0.113.9');
  assert.equal(bridge.seen.headers?.['x-ctll-max-machines'], '4');
  assert.equal(bridge.seen.headers?.['x-ctll-credential-expires'], '1900000000000');
  const forever = recorded();
  answerEdgeRoute(forever.res, { route: 'direct', endpoint: 'http://10.200.0.2:8080', secret: 's', path: '/bridge', tunnel: { address: '203.0.113.9', maxMachines: 4 } });
  assert.equal(forever.seen.headers?.['x-ctll-credential-expires'], undefined, 'a credential without expiry sends none (nginx then drops the header)');
  const through = recorded();
  answerEdgeRoute(through.res, { route: 'through', reason: 'client-key' });
  assert.equal(through.seen.status, 403);
  assert.deepEqual(Object.keys(through.seen.headers ?? {}).filter((h) => h.startsWith('x-ctll')), []);
});
