import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relayableRequestHeaders, relayableResponseHeaders } from './headers.js';

test('request headers lose hop-by-hop, cloud-only and pseudo headers', () => {
  const out = relayableRequestHeaders({
    ':path': '/api/chat',
    host: 'cloud.example.com',
    origin: 'https://app.example.com',
    authorization: 'Bearer secret',
    cookie: 'a=b',
    connection: 'keep-alive, x-drop-me',
    'x-drop-me': '1',
    'keep-alive': 'timeout=5',
    'transfer-encoding': 'chunked',
    te: 'trailers',
    upgrade: 'h2c',
    'x-forwarded-for': '203.0.113.9',
    'content-type': 'application/json',
    'content-length': '12',
    'user-agent': 'ollama-js/0.6',
  });
  assert.deepEqual(out, { 'content-type': 'application/json', 'content-length': '12', 'user-agent': 'ollama-js/0.6' });
});

test('response headers keep content headers and drop hop-by-hop and Ollama CORS', () => {
  const out = relayableResponseHeaders({
    ':status': '200',
    'content-type': 'application/x-ndjson',
    'transfer-encoding': 'chunked',
    connection: 'close',
    'access-control-allow-origin': 'http://localhost',
    date: 'x',
  });
  assert.deepEqual(out, { 'content-type': 'application/x-ndjson', date: 'x' });
});
