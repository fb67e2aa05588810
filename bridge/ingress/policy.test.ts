import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MANAGEMENT_ENDPOINTS } from './ollama-routes.js';
import { decide, DEFAULT_POLICY, parseManagementList } from './policy.js';

const HOST = '127.0.0.1:11434';
const ask = (method: string, path: string, extra: { authority?: string; scheme?: string } = {}, policy = DEFAULT_POLICY) =>
  decide(policy, { method, path, authority: extra.authority ?? 'ollama.tunnel', scheme: extra.scheme ?? 'http' }, HOST);

test('reads and inference are allowed by default', () => {
  for (const [m, p] of [
    ['GET', '/'],
    ['HEAD', '/'],
    ['GET', '/api/version'],
    ['GET', '/api/tags'],
    ['GET', '/api/ps'],
    ['POST', '/api/show'],
    ['POST', '/api/generate'],
    ['POST', '/api/chat'],
    ['POST', '/api/embed'],
    ['POST', '/api/embeddings'],
    ['POST', '/v1/chat/completions'],
    ['POST', '/v1/completions'],
    ['POST', '/v1/embeddings'],
    ['GET', '/v1/models'],
    ['GET', '/v1/models/llama3.2:latest'],
    ['GET', '/v1/models/hf.co/org/model:Q4_K_M'],
    ['GET', '/api/tags?x=1'],
  ] as const) {
    const d = ask(m, p);
    assert.equal(d.allow, true, `${m} ${p} should be allowed: ${JSON.stringify(d)}`);
  }
});

const MANAGEMENT_REQUESTS = [
  ['POST', '/api/pull', 'pull'],
  ['POST', '/api/push', 'push'],
  ['POST', '/api/create', 'create'],
  ['POST', '/api/copy', 'copy'],
  ['DELETE', '/api/delete', 'delete'],
  ['HEAD', `/api/blobs/sha256:${'a'.repeat(64)}`, 'blobs'],
  ['POST', `/api/blobs/sha256-${'b'.repeat(64)}`, 'blobs'],
] as const;

test('model management is refused by default with 403, naming the setting that allows it', () => {
  for (const [m, p, endpoint] of MANAGEMENT_REQUESTS) {
    const d = ask(m, p);
    assert.equal(d.allow, false, `${m} ${p}`);
    if (d.allow) continue;
    assert.equal(d.status, 403);
    assert.equal(d.code, 'policy');
    assert.match(d.message, new RegExp(`Allow from the cloud: ${endpoint}`));
    assert.match(d.message, new RegExp(`--allow ${endpoint}`));
  }
});

test('each management endpoint is allowed by its own switch only', () => {
  for (const [m, p, endpoint] of MANAGEMENT_REQUESTS) {
    const only = { allowManagement: new Set([endpoint]) };
    assert.equal(ask(m, p, {}, only).allow, true, `${endpoint} allows ${p}`);
    const others = { allowManagement: new Set(MANAGEMENT_ENDPOINTS.filter((e) => e !== endpoint)) };
    assert.equal(ask(m, p, {}, others).allow, false, `the other switches do not allow ${p}`);
  }
});

test('paths outside the Ollama API are refused with 404 (and a trailing slash with 400, as an empty segment)', () => {
  for (const [p, status, code] of [
    ['/admin', 404, 'not-ollama-api'],
    ['/api', 404, 'not-ollama-api'],
    ['/api/tagsx', 404, 'not-ollama-api'],
    ['/metrics', 404, 'not-ollama-api'],
    ['/api/blobs/sha256:short', 404, 'not-ollama-api'],
    ['/v2/chat', 404, 'not-ollama-api'],
    ['/api/', 400, 'empty-segment'],
    ['/v1/models/', 400, 'empty-segment'],
  ] as const) {
    const d = ask('GET', p);
    assert.deepEqual(d.allow ? d : { status: d.status, code: d.code }, { status, code }, p);
  }
});

test('wrong methods get 405 with the methods that are allowed', () => {
  const d = ask('GET', '/api/chat');
  assert.equal(d.allow, false);
  if (d.allow) return;
  assert.equal(d.status, 405);
  assert.equal(d.allowHeader, 'POST');
  assert.equal(ask('DELETE', '/api/tags').allow, false);
  assert.equal(ask('CONNECT', '/').allow, false);
});

test('other hosts, schemes, absolute-form and traversal never reach the network', () => {
  const cases: Array<[string, string, { authority?: string; scheme?: string }, number, string]> = [
    ['GET', '/api/tags', { authority: 'evil.example:22' }, 421, 'other-host'],
    ['GET', '/api/tags', { authority: '127.0.0.1:22' }, 421, 'other-host'],
    ['GET', '/api/tags', { scheme: 'ftp' }, 400, 'bad-scheme'],
    ['GET', 'http://evil.example/api/tags', {}, 400, 'absolute-form'],
    ['GET', 'evil.example:443', {}, 400, 'absolute-form'],
    ['GET', '/api/../etc/passwd', {}, 400, 'traversal'],
    ['GET', '/api/%2e%2e/x', {}, 400, 'traversal'],
    ['GET', '/api/%252e%252e/x', {}, 400, 'bad-encoding'],
    ['GET', '/api/%zz', {}, 400, 'bad-encoding'],
    ['GET', '/api//tags', {}, 400, 'empty-segment'],
    ['GET', '/api\\tags', {}, 400, 'bad-characters'],
    ['GET', '/api/tags#x', {}, 400, 'bad-characters'],
    ['GET', '/api/tags%00', {}, 400, 'bad-encoding'],
    ['GET', '/' + 'a'.repeat(5000), {}, 414, 'path-too-long'],
    ['GET', '', {}, 400, 'no-path'],
  ];
  for (const [m, p, extra, status, code] of cases) {
    const d = ask(m, p, extra);
    assert.equal(d.allow, false, `${p} ${JSON.stringify(extra)} must be refused`);
    if (d.allow) continue;
    assert.equal(d.status, status, `${p}: status`);
    assert.equal(d.code, code, `${p}: code`);
    assert.ok(d.message.length > 20, 'the refusal explains itself');
  }
  assert.equal(ask('GET', '/api/tags', { authority: HOST }).allow, true, 'the configured Ollama host is accepted');
});

test('the allow list parses names and all, and rejects unknown names clearly', () => {
  assert.deepEqual([...parseManagementList('pull, delete')], ['pull', 'delete']);
  assert.equal(parseManagementList('all').size, MANAGEMENT_ENDPOINTS.length);
  assert.equal(parseManagementList('').size, 0);
  assert.throws(() => parseManagementList('pull,format-disk'), /unknown model management endpoint "format-disk"/);
});
