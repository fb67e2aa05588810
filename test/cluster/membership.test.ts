import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { Membership } from '@cloudtolocalllm/server/cluster/membership';
import { startDnsStub, type DnsStub } from './dns-stub.js';

let dns: DnsStub;
before(async () => {
  dns = await startDnsStub();
});
after(() => dns.close());

test('the members are the A records of tasks.<service> from a real DNS server, with the peer port', async () => {
  dns.set('tasks.api-backend', ['10.0.0.4', '10.0.0.2', '10.0.0.3']);
  const m = new Membership({ kind: 'dns', service: 'api-backend', port: 8443, servers: [dns.server], intervalMs: 60_000 });
  await m.start();
  assert.deepEqual(m.members, ['10.0.0.2:8443', '10.0.0.3:8443', '10.0.0.4:8443']);
  m.close();
});

test('a task leaving and one joining are seen at the next lookup, each as one change event', async () => {
  dns.set('tasks.api-b', ['10.0.0.2', '10.0.0.3', '10.0.0.4']);
  const m = new Membership({ kind: 'dns', service: 'api-b', port: 8443, servers: [dns.server], intervalMs: 20 });
  await m.start();
  const changes: Array<readonly string[]> = [];
  m.on('change', (members) => changes.push(members));
  dns.set('tasks.api-b', ['10.0.0.2', '10.0.0.4']);
  const [left, previous] = await once(m, 'change');
  assert.deepEqual(left, ['10.0.0.2:8443', '10.0.0.4:8443']);
  assert.deepEqual(previous, ['10.0.0.2:8443', '10.0.0.3:8443', '10.0.0.4:8443']);
  dns.set('tasks.api-b', ['10.0.0.5', '10.0.0.4', '10.0.0.2']);
  const [joined] = await once(m, 'change');
  assert.deepEqual(joined, ['10.0.0.2:8443', '10.0.0.4:8443', '10.0.0.5:8443']);
  // Same answer again (other order): no event.
  dns.set('tasks.api-b', ['10.0.0.2', '10.0.0.5', '10.0.0.4']);
  const seen = dns.queries('tasks.api-b');
  while (dns.queries('tasks.api-b') < seen + 3) await new Promise((r) => setTimeout(r, 10));
  assert.equal(changes.length, 2);
  m.close();
});

test('a failed lookup (no records, NXDOMAIN) keeps the members known and says why, without an empty list', async () => {
  dns.set('tasks.api-c', ['10.0.0.2']);
  const m = new Membership({ kind: 'dns', service: 'api-c', port: 8443, servers: [dns.server], intervalMs: 60_000 });
  await m.start();
  const errors: Error[] = [];
  m.on('error', (e) => errors.push(e));
  m.on('change', () => assert.fail('no change on a failed lookup'));
  dns.set('tasks.api-c', []);
  const other = new Membership({ kind: 'dns', service: 'missing', port: 8443, servers: [dns.server] });
  const otherErrors: Error[] = [];
  other.on('error', (e) => otherErrors.push(e));
  await other.refresh();
  assert.match(otherErrors[0]?.message ?? '', /cannot resolve tasks\.missing \(ENOTFOUND\)/);
  assert.deepEqual(other.members, []);
  other.close();
  await m.refresh();
  assert.match(errors[0]?.message ?? '', /cannot resolve tasks\.api-c \(ENODATA\); keeping the 1 members known/);
  assert.deepEqual(m.members, ['10.0.0.2:8443']);
  m.close();
});

test('a static list: sorted, deduplicated, checked, replaced with a change event', async () => {
  const m = new Membership({ kind: 'static', members: ['b.local:8443', 'a.local:8443', 'b.local:8443'] });
  await m.start();
  assert.deepEqual(m.members, ['a.local:8443', 'b.local:8443']);
  const changed = once(m, 'change');
  m.setStatic(['a.local:8443']);
  assert.deepEqual((await changed)[0], ['a.local:8443']);
  assert.throws(() => new Membership({ kind: 'static', members: ['a.local'] }), /cluster member "a.local" is not host:port/);
  assert.throws(() => m.setStatic(['a.local:70000']), /port 70000, outside 1-65535/);
  m.close();
});
