import { test } from 'node:test';
import assert from 'node:assert/strict';
import { userHash } from './user-hash.js';
import {
  BRIDGE_NAME_PATTERN,
  bridgeName,
  containerCreateOptions,
  DEFAULT_LIMITS,
  gatewayAddress,
  networkCreateOptions,
  PROXY_CONTAINER_KEYS,
  PROXY_HOST_CONFIG_KEYS,
  proxyAddress,
  USER_NETWORK_KEYS,
  USER_NETWORK_OPTIONS,
} from './container-spec.js';
import { assertUserHash, containerLabels, containerName, inStack, labelFilters, namePattern, networkLabels, networkName, ownerOf } from './naming.js';

const rawId = 'auth0|6543210fedcba@example.com';
const hash = userHash(rawId);

test('names and labels come from the user hash, never the raw id', () => {
  assert.equal(containerName(hash), `ctll-proxy-${hash}`);
  assert.equal(networkName(hash), `ctll-net-${hash}`);
  assert.deepEqual(containerLabels(hash), { 'cloudtolocalllm.type': 'streaming-proxy', 'cloudtolocalllm.owner': hash });
  assert.deepEqual(networkLabels(hash, '10.200.0.16/28'), {
    'cloudtolocalllm.type': 'user-network',
    'cloudtolocalllm.owner': hash,
    'cloudtolocalllm.subnet': '10.200.0.16/28',
  });
  assert.throws(() => containerName(rawId), /expected a user hash/);
  assert.throws(() => networkName(hash.toUpperCase()), /expected a user hash/);
  assert.throws(() => assertUserHash(hash.slice(1)), /expected a user hash/);
  assert.equal(ownerOf({ 'cloudtolocalllm.owner': hash }), hash);
  assert.equal(ownerOf({ 'cloudtolocalllm.owner': 'alice' }), undefined);
  assert.equal(ownerOf(undefined), undefined);
});

test('addresses and bridge names derive from the subnet', () => {
  assert.equal(gatewayAddress('10.200.0.16/28'), '10.200.0.17');
  assert.equal(proxyAddress('10.200.0.16/28'), '10.200.0.18');
  assert.equal(bridgeName('10.200.0.16/28'), 'ctll-0ac80010');
  assert.equal(bridgeName('192.168.255.240/28'), 'ctll-c0a8fff0');
  assert.ok(bridgeName('255.255.255.252/30').length <= 15, 'Linux interface names have at most 15 characters');
});

test('the network is internal, on the allocated subnet, labelled', () => {
  const options = networkCreateOptions(hash, '10.200.0.16/28');
  assert.equal(options.Name, `ctll-net-${hash}`);
  assert.equal(options.Driver, 'bridge');
  assert.equal(options.Internal, true);
  assert.deepEqual(options.IPAM, { Driver: 'default', Config: [{ Subnet: '10.200.0.16/28', Gateway: '10.200.0.17' }] });
  assert.equal(options.Labels?.['cloudtolocalllm.subnet'], '10.200.0.16/28');
  assert.equal(options.Options?.['com.docker.network.bridge.name'], 'ctll-0ac80010');
  assert.ok(!JSON.stringify(options).includes(rawId));
});

test('the container is confined: limits, read-only, no capabilities, no published ports', () => {
  const options = containerCreateOptions({ userHash: hash, secret: 's3cret-s3cret-s3cret', image: 'img:1', subnet: '10.200.0.16/28', limits: DEFAULT_LIMITS });
  const host = options.HostConfig!;
  assert.equal(options.name, `ctll-proxy-${hash}`);
  assert.equal(options.User, '1001:1001');
  assert.deepEqual(options.Env, [`PROXY_OWNER=${hash}`, 'PROXY_TOKEN=s3cret-s3cret-s3cret', 'PROXY_HOST=0.0.0.0', 'PROXY_PORT=8080']);
  // The server's relay settings, when it has them: the proxy keeps the user's concurrent-request limit too.
  const relayed = containerCreateOptions({ userHash: hash, secret: 's3cret-s3cret-s3cret', image: 'img:1', subnet: '10.200.0.16/28', limits: DEFAULT_LIMITS, responseHeadTimeoutMs: 5000, maxConcurrentRequests: 64 });
  assert.deepEqual(relayed.Env?.slice(4), ['PROXY_RESPONSE_HEAD_TIMEOUT_MS=5000', 'PROXY_MAX_CONCURRENT_REQUESTS=64']);
  assert.equal(host.Memory, 536870912);
  assert.equal(host.MemorySwap, 536870912, 'no swap');
  assert.equal(host.NanoCpus, 500000000);
  assert.equal(host.CpuShares, undefined, 'a weight is not a limit');
  assert.equal(host.PidsLimit, 128);
  assert.equal(host.ReadonlyRootfs, true);
  assert.deepEqual(host.Tmpfs, { '/tmp': 'rw,noexec,nosuid,nodev,size=16m' });
  assert.deepEqual(host.CapDrop, ['ALL']);
  assert.deepEqual(host.SecurityOpt, ['no-new-privileges:true']);
  assert.deepEqual(host.RestartPolicy, { Name: 'no' });
  assert.equal(host.AutoRemove, true);
  assert.equal(host.NetworkMode, `ctll-net-${hash}`);
  assert.deepEqual(host.PortBindings, {});
  assert.deepEqual(host.LogConfig, { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } });
  assert.deepEqual(options.NetworkingConfig?.EndpointsConfig?.[`ctll-net-${hash}`]?.IPAMConfig, { IPv4Address: '10.200.0.18' });
  assert.deepEqual(options.Healthcheck, { Test: ['NONE'] }, 'the engine health check is off unless asked for');
  assert.ok(!JSON.stringify(options).includes(rawId));
  const checked = containerCreateOptions({ userHash: hash, secret: 's3cret-s3cret-s3cret', image: 'img:1', subnet: '10.200.0.16/28', limits: { ...DEFAULT_LIMITS, engineHealthIntervalMs: 30_000 } });
  assert.deepEqual(checked.Healthcheck?.Test, ['CMD', 'node', '/app/healthcheck.mjs']);
  assert.equal(checked.Healthcheck?.Interval, 30e9);
});

test('a stack name scopes names, labels and filters; without one, only unlabelled objects are ours', () => {
  assert.equal(containerName(hash, 'prod'), `ctll-prod-proxy-${hash}`);
  assert.equal(networkName(hash, 'prod'), `ctll-prod-net-${hash}`);
  assert.equal(containerLabels(hash, 'prod')['cloudtolocalllm.stack'], 'prod');
  assert.equal(networkLabels(hash, '10.200.0.16/28', 'prod')['cloudtolocalllm.stack'], 'prod');
  assert.deepEqual(labelFilters('proxy', 'prod'), ['cloudtolocalllm.type=streaming-proxy', 'cloudtolocalllm.stack=prod']);
  assert.deepEqual(labelFilters('network'), ['cloudtolocalllm.type=user-network']);
  assert.equal(inStack(containerLabels(hash, 'prod'), 'prod'), true);
  assert.equal(inStack(containerLabels(hash, 'prod'), undefined), false, 'a stack\'s objects are not the stackless server\'s');
  assert.equal(inStack(containerLabels(hash), 'prod'), false);
  assert.equal(inStack(containerLabels(hash), undefined), true);
  assert.ok(namePattern('proxy', 'a.b').test(`ctll-a.b-proxy-${hash}`));
  assert.ok(!namePattern('proxy', 'a.b').test(`ctll-axb-proxy-${hash}`), 'a dot in the stack name is literal');
  assert.ok(!namePattern('proxy').test(`ctll-prod-proxy-${hash}`));
  assert.ok(!namePattern('net', 'prod').test(`ctll-net-${hash}`));
  const options = containerCreateOptions({ userHash: hash, secret: 's3cret-s3cret-s3cret', image: 'img:1', subnet: '10.200.0.16/28', limits: DEFAULT_LIMITS, stack: 'prod' });
  assert.equal(options.HostConfig?.NetworkMode, `ctll-prod-net-${hash}`);
  assert.ok(options.NetworkingConfig?.EndpointsConfig?.[`ctll-prod-net-${hash}`]);
  for (const bad of ['', 'Prod', '-x', 'a b', 'x'.repeat(64), 'a/b']) {
    assert.throws(() => containerName(hash, bad), /CTLL_STACK_NAME/, JSON.stringify(bad));
  }
});

test('the setting lists the Docker API filter allows are exactly what the spec makes', () => {
  const container = containerCreateOptions({ userHash: hash, secret: 's3cret-s3cret-s3cret', image: 'img:1', subnet: '10.200.0.16/28', limits: DEFAULT_LIMITS, stack: 'prod' });
  assert.deepEqual(Object.keys(container).sort(), [...PROXY_CONTAINER_KEYS].sort());
  assert.deepEqual(Object.keys(container.HostConfig ?? {}).sort(), [...PROXY_HOST_CONFIG_KEYS].sort());
  const network = networkCreateOptions(hash, '10.200.0.16/28', 'prod');
  assert.deepEqual(Object.keys(network).sort(), [...USER_NETWORK_KEYS].sort());
  assert.deepEqual(Object.keys(network.Options ?? {}).sort(), [...USER_NETWORK_OPTIONS].sort());
  for (const subnet of ['10.200.0.16/28', '10.255.255.240/28', '0.0.0.0/28']) assert.match(bridgeName(subnet), BRIDGE_NAME_PATTERN);
});
