import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCounted, refusedByBridge, refusedByRule, userBridges } from './firewall-counters.js';

describe('the isolation firewall\'s counters', () => {
  test('per rule, from iptables-nft\'s listing (counters before the target) and legacy\'s (at the end)', () => {
    const nft = [
      '-N CTLL-ISOLATION',
      '-A CTLL-ISOLATION -m conntrack --ctstate RELATED,ESTABLISHED -c 900 90000 -j RETURN',
      '-A CTLL-ISOLATION -p tcp -c 12 720 -j REJECT --reject-with tcp-reset',
      '-A CTLL-ISOLATION -m addrtype --dst-type LOCAL -c 3 180 -j REJECT --reject-with icmp-port-unreachable',
      '-A CTLL-ISOLATION -c 2 120 -j REJECT --reject-with icmp-net-unreachable',
    ].join('\n');
    assert.deepEqual(refusedByRule(nft), { tcp: 12, host: 3, beyond: 2 });
    const legacy = '-A CTLL-ISOLATION -p tcp -j REJECT --reject-with tcp-reset -c 5 300\n';
    assert.deepEqual(refusedByRule(legacy), { tcp: 5, host: 0, beyond: 0 });
    assert.deepEqual(parseCounted('CTLL-ISOLATION', legacy), [['-p tcp -j REJECT --reject-with tcp-reset', 5]]);
  });

  test('per bridge, only user network bridges', () => {
    const listing = [
      '-N CTLL-REFUSALS',
      '-A CTLL-REFUSALS -i ctll-0ac80000 -c 7 420 -j RETURN',
      '-A CTLL-REFUSALS -i ctll-0ac80010 -c 0 0 -j RETURN',
      '-A CTLL-REFUSALS -i eth0 -c 9 9 -j RETURN',
    ].join('\n');
    assert.deepEqual(refusedByBridge(listing), { 'ctll-0ac80000': 7, 'ctll-0ac80010': 0 });
  });

  test('the user bridges among the host\'s interfaces; none when they cannot be listed', () => {
    assert.deepEqual(userBridges(() => ['lo', 'ctll-0ac80010', 'docker0', 'ctll-0ac80000', 'ctll-x']), ['ctll-0ac80000', 'ctll-0ac80010']);
    assert.deepEqual(userBridges(() => { throw new Error('no /sys'); }), []);
  });
});
