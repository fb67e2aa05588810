import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyHost, hostCheckApplies, isAllowedHost, splitHostPort, type HostPolicy } from './host-check.js';
import { isLoopback, isPrivate, isUnspecified, parseIp } from './ip-address.js';

const policy: HostPolicy = { hostname: 'My-PC', localAddresses: ['203.0.113.7', '2001:db8::7'] };

describe('splitHostPort (Go net.SplitHostPort)', () => {
  const cases: Array<[string, { host: string; port: string } | undefined]> = [
    ['localhost:11434', { host: 'localhost', port: '11434' }],
    ['127.0.0.1:80', { host: '127.0.0.1', port: '80' }],
    ['[::1]:11434', { host: '::1', port: '11434' }],
    ['localhost:', { host: 'localhost', port: '' }],
    ['localhost', undefined],
    ['::1', undefined],
    ['[::1]', undefined],
    ['[::1', undefined],
    ['a:b:c', undefined],
    ['[::1]x:1', undefined],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} -> ${JSON.stringify(expected)}`, () => assert.deepEqual(splitHostPort(input), expected));
  }
});

describe('parseIp and classifiers (Go net/netip)', () => {
  it('accepts what netip.ParseAddr accepts and nothing more', () => {
    for (const ok of ['127.0.0.1', '0.0.0.0', '::', '::1', 'fe80::1%eth0', '::ffff:10.1.2.3', '2001:db8:0:0:0:0:0:1']) assert.ok(parseIp(ok), ok);
    for (const bad of ['127.000.0.1', '01.2.3.4', '1.2.3', '256.1.1.1', '[::1]', '1::2::3', '1:2:3:4:5:6:7:8:9', 'localhost', '', 'fe80::1%']) assert.equal(parseIp(bad), undefined, bad);
  });
  it('classifies loopback, private and unspecified addresses like netip', () => {
    const ip = (s: string) => parseIp(s) ?? assert.fail(`unparsed ${s}`);
    assert.ok(isLoopback(ip('127.9.9.9')) && isLoopback(ip('::1')) && isLoopback(ip('::ffff:127.0.0.1')));
    assert.ok(!isLoopback(ip('::2')));
    assert.ok(isPrivate(ip('10.0.0.1')) && isPrivate(ip('172.16.0.1')) && isPrivate(ip('172.31.255.255')) && isPrivate(ip('192.168.1.1')) && isPrivate(ip('fd00::1')));
    assert.ok(!isPrivate(ip('172.32.0.1')) && !isPrivate(ip('169.254.1.1')) && !isPrivate(ip('100.64.0.1')) && !isPrivate(ip('fe80::1')));
    assert.ok(isUnspecified(ip('0.0.0.0')) && isUnspecified(ip('::')) && !isUnspecified(ip('::ffff:0.0.0.0')));
  });
});

describe('isAllowedHost (Ollama allowedHostsMiddleware)', () => {
  const allowed = [
    '', 'localhost', 'localhost:11434', 'LOCALHOST:11434', '127.0.0.1', '127.0.0.1:11434', '127.1.2.3:8080',
    '::1', '[::1]:11434', '0.0.0.0:11434', '[::]:11434', '10.0.0.5', '192.168.1.10:11434', '172.20.0.2:11434', '[fd12::1]:11434',
    'my-pc', 'MY-PC:11434', 'ollama.localhost', 'printer.local:631', 'host.docker.internal:11434',
    '203.0.113.7:11434', '[2001:db8::7]:11434',
  ];
  const refused = [
    'cloud.example.com', 'cloud.example.com:443', 'example.local.evil.com', 'localhost.', 'localhostx',
    '8.8.8.8', '8.8.8.8:11434', '169.254.1.1', '100.64.0.1:11434', '172.32.0.1', '[fe80::1]:11434',
    '[::1]', '127.000.0.1', 'my-pc.example.com', 'internal', 'local',
  ];
  for (const host of allowed) it(`allows Host ${JSON.stringify(host)}`, () => assert.equal(isAllowedHost(host, policy), true));
  for (const host of refused) it(`refuses Host ${JSON.stringify(host)}`, () => assert.equal(isAllowedHost(host, policy), false));

  it('tells IP hosts from name hosts (only names get the OPTIONS 204)', () => {
    assert.equal(classifyHost('127.0.0.1:11434', policy), 'ip');
    assert.equal(classifyHost('localhost:11434', policy), 'name');
    assert.equal(classifyHost('evil.com', policy), 'forbidden');
  });
});

describe('hostCheckApplies', () => {
  it('runs only when listening on a loopback address', () => {
    assert.equal(hostCheckApplies('127.0.0.1'), true);
    assert.equal(hostCheckApplies('::1'), true);
    assert.equal(hostCheckApplies('0.0.0.0'), false);
    assert.equal(hostCheckApplies('::'), false);
    assert.equal(hostCheckApplies('192.168.1.2'), false);
  });
});
