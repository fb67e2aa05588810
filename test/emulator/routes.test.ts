import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchRoute, ROUTES } from './routes.js';

describe('route table', () => {
  it('matches exact methods and :param segments', () => {
    const blob = matchRoute('POST', '/api/blobs/sha256:abc');
    assert.equal(blob.kind, 'route');
    assert.deepEqual(blob.kind === 'route' && blob.params, { digest: 'sha256:abc' });
    assert.equal(matchRoute('GET', '/api/blobs/sha256:abc').kind, 'none');
    assert.equal(matchRoute('GET', '/v1/models/').kind, 'redirect');
    assert.equal(matchRoute('POST', '/api/blobs/').kind, 'none');
  });

  it('never collects the body of a blob upload (it is hashed as it streams)', () => {
    const upload = ROUTES.find((r) => r.method === 'POST' && r.pattern === '/api/blobs/:digest');
    assert.equal(upload?.body, 'stream');
    assert.ok(ROUTES.filter((r) => r.body === 'json').every((r) => r.method === 'POST' || r.method === 'DELETE'));
  });

  it('answers /v1 errors in the OpenAI shape and the rest natively', () => {
    for (const r of ROUTES) assert.equal(r.errors, r.pattern.startsWith('/v1/') ? 'openai' : 'native', r.pattern);
  });
});
