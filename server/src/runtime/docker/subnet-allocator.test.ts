import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { formatCidr, formatIpv4, overlaps, parseCidr, parseIpv4 } from '@cloudtolocalllm/proxy-spec/cidr';
import {
  capacity,
  DockerSubnetAllocator,
  isOverlapError,
  findFreeSubnet,
  subnetPlan,
  SubnetExhaustedError,
  type SubnetPlan,
} from './subnet-allocator.js';

const c = (s: string) => parseCidr(s, { strict: false });
const free = (plan: SubnetPlan, used: string[]) => {
  const found = findFreeSubnet(plan, used.map(c));
  return found && formatCidr(found);
};

test('parseCidr reads IPv4 CIDR blocks, including addresses above 128.0.0.0', () => {
  assert.deepEqual(parseCidr('10.200.0.0/16'), { network: 10 * 2 ** 24 + 200 * 2 ** 16, prefix: 16 });
  assert.equal(formatCidr(parseCidr(' 192.168.255.240/28 ')), '192.168.255.240/28');
  assert.equal(formatCidr(parseCidr('0.0.0.0/0')), '0.0.0.0/0');
  assert.equal(formatIpv4(parseIpv4('255.255.255.255')), '255.255.255.255');
  assert.equal(formatCidr(parseCidr('10.200.0.7/28', { strict: false })), '10.200.0.0/28');
});

test('parseCidr rejects malformed blocks with messages that say what is wrong', () => {
  assert.throws(() => parseCidr('10.200.0.0'), /not an IPv4 CIDR block \(expected an address and a prefix length, like 10\.200\.0\.0\/16\)/);
  assert.throws(() => parseCidr('10.200.0/16'), /"10\.200\.0" is not an IPv4 address/);
  assert.throws(() => parseCidr('10.256.0.0/16'), /256 is larger than 255/);
  assert.throws(() => parseCidr('10.200.0.0/33'), /invalid prefix length "\/33" \(expected 0 to 32\)/);
  assert.throws(() => parseCidr('10.200.0.0/x'), /invalid prefix length "\/x"/);
  assert.throws(() => parseCidr('fd00::/8'), /is not an IPv4 address/);
  assert.throws(() => parseCidr('10.200.1.0/15'), /has host bits set: the block containing 10\.200\.1\.0 is 10\.200\.0\.0\/15/);
});

test('subnetPlan validates the range and the subnet size', () => {
  assert.equal(capacity(subnetPlan()), 4096, 'default 10.200.0.0/16 in /28 blocks');
  assert.equal(capacity(subnetPlan('10.200.0.0/24', 30)), 64);
  assert.throws(() => subnetPlan('10.200.0.1/16'), /invalid subnet range \(CTLL_SUBNET_RANGE\): .*host bits set/);
  assert.throws(() => subnetPlan('10.200.0.0/16', 12), /invalid subnet size \/12 \(CTLL_SUBNET_PREFIX\): it must be between the range's own \/16 and \/30/);
  assert.throws(() => subnetPlan('10.200.0.0/16', 31), /between the range's own \/16 and \/30/);
  assert.throws(() => subnetPlan('10.200.0.0/16', 28.5), /invalid subnet size/);
});

test('findFreeSubnet hands out blocks in address order, filling gaps first', () => {
  const plan = subnetPlan();
  assert.equal(free(plan, []), '10.200.0.0/28');
  assert.equal(free(plan, ['10.200.0.0/28']), '10.200.0.16/28');
  assert.equal(free(plan, ['10.200.0.32/28', '10.200.0.0/28', '10.200.0.16/28']), '10.200.0.48/28', 'order of `used` does not matter');
  assert.equal(free(plan, ['10.200.0.0/28', '10.200.0.32/28']), '10.200.0.16/28', 'a freed block is reused');
  assert.equal(free(plan, ['10.200.0.0/28', '10.200.0.0/28']), '10.200.0.16/28', 'duplicates are harmless');
});

test('findFreeSubnet skips foreign networks of any size and ignores those outside the range', () => {
  const plan = subnetPlan();
  assert.equal(free(plan, ['172.17.0.0/16', '10.201.0.0/16', '192.168.0.0/20']), '10.200.0.0/28', 'outside the range');
  assert.equal(free(plan, ['10.200.0.0/24']), '10.200.1.0/28', 'a larger network covering the start');
  assert.equal(free(plan, ['10.200.0.20/30']), '10.200.0.0/28', 'a small network inside a later block');
  assert.equal(free(plan, ['10.200.0.0/28', '10.200.0.20/30']), '10.200.0.32/28', 'a /30 makes its whole /28 unusable');
  assert.equal(free(plan, ['10.200.0.0/20', '10.200.8.0/21', '10.200.16.0/28']), '10.200.16.16/28', 'nested and adjacent');
  assert.equal(free(plan, ['10.0.0.0/8']), undefined, 'a network around the whole range');
  assert.equal(free(subnetPlan('10.200.0.0/16', 24), ['10.200.0.17/32', '10.200.3.0/25']), '10.200.1.0/24');
  const found = findFreeSubnet(plan, ['10.200.0.0/24', '10.200.1.8/29'].map(c));
  assert.ok(found && !overlaps(found, c('10.200.1.8/29')) && !overlaps(found, c('10.200.0.0/24')));
});

test('findFreeSubnet reports exhaustion, and the error says how to fix it', (t) => {
  const plan = subnetPlan('10.200.0.0/26', 28);
  const all = ['10.200.0.0/28', '10.200.0.16/28', '10.200.0.32/28', '10.200.0.48/28'];
  assert.equal(free(plan, all.slice(0, 3)), '10.200.0.48/28');
  assert.equal(free(plan, all), undefined);
  assert.equal(
    new SubnetExhaustedError(subnetPlan(), 4096).message,
    'no free /28 subnet left in 10.200.0.0/16: 4096 in use; raise CTLL_SUBNET_RANGE (a larger range holds more users) or remove unused networks',
  );
  // The whole default range taken (it jumps over intervals, not block by block; how long it
  // takes is a diagnostic, not a test: speed belongs in bench/).
  const used = Array.from({ length: 4096 }, (_, i) => formatCidr({ network: c('10.200.0.0/16').network + i * 16, prefix: 28 }));
  const started = performance.now();
  assert.equal(free(subnetPlan(), used), undefined);
  t.diagnostic(`4,096 subnets in use, none free: answered in ${(performance.now() - started).toFixed(1)} ms`);
});

/** A stand-in engine: networks appear once "created", listNetworks answers after a delay. */
function fakeEngine() {
  const networks = new Map<string, string>(); // name -> subnet
  const docker = {
    async listNetworks() {
      const snapshot = [...networks.values()];
      await sleep(Math.random() * 5);
      return [
        { Name: 'bridge', IPAM: { Config: [{ Subnet: '172.17.0.0/16' }] } },
        { Name: 'host', IPAM: { Config: [] } },
        { Name: 'v6', IPAM: { Config: [{ Subnet: 'fd00::/64' }] } },
        ...snapshot.map((s) => ({ Name: s, IPAM: { Config: [{ Subnet: s }] } })),
      ];
    },
  } as unknown as Pick<Dockerode, 'listNetworks'>;
  return { docker, networks };
}

test('DockerSubnetAllocator: concurrent allocations never collide, and a removed network frees its subnet', async () => {
  const { docker, networks } = fakeEngine();
  const allocator = new DockerSubnetAllocator(docker, { range: '10.200.0.0/24' });
  const subnets = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      allocator.withSubnet(async (subnet) => {
        await sleep(Math.random() * 20); // network creation takes a while
        networks.set(`n${i}`, subnet);
        return subnet;
      }),
    ),
  );
  assert.equal(new Set(subnets).size, 16);
  for (const a of subnets) for (const b of subnets) if (a !== b) assert.ok(!overlaps(c(a), c(b)), `${a} overlaps ${b}`);
  await assert.rejects(
    allocator.withSubnet(async (s) => s),
    (e: Error) => e instanceof SubnetExhaustedError && /no free \/28 subnet left in 10\.200\.0\.0\/24: 16 in use/.test(e.message),
  );
  networks.delete('n5');
  assert.equal(await allocator.withSubnet(async (s) => s), subnets[5]);
});

test('DockerSubnetAllocator: a failed creation frees the block; an overlap reported by the engine picks another', async () => {
  const { docker, networks } = fakeEngine();
  const allocator = new DockerSubnetAllocator(docker, { range: '10.200.0.0/24' });
  await assert.rejects(allocator.withSubnet(async () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(await allocator.withSubnet(async (s) => s), '10.200.0.0/28');
  const tried: string[] = [];
  const got = await allocator.withSubnet(async (subnet) => {
    tried.push(subnet);
    if (tried.length === 1) {
      networks.set('someone-else', '10.200.0.0/27'); // another process won the race
      throw new Error('Pool overlaps with other one on this address space');
    }
    return subnet;
  });
  assert.deepEqual(tried, ['10.200.0.0/28', '10.200.0.32/28']);
  assert.equal(got, '10.200.0.32/28');
});

test('isOverlapError: both of the engine\'s "this block is taken" answers, nothing else', () => {
  assert.ok(isOverlapError(new Error('Pool overlaps with other one on this address space')));
  assert.ok(isOverlapError(new Error('(HTTP code 403) unexpected - cannot create network 074b (ctll-0ac80320): conflicts with network 5092 (ctll-0ac80320): networks have same bridge name')));
  assert.ok(!isOverlapError(new Error('network with name ctll-net-x already exists')));
  assert.ok(!isOverlapError(new Error('connect ECONNREFUSED /var/run/docker.sock')));
});
