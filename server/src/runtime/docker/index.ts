/** The Docker runtime's public surface; the other modules are its parts. */
export { DockerRuntime, DEFAULT_IMAGE, describeExit, type DockerProbe, type DockerRuntimeOptions, type FirewallMode } from './docker-runtime.js';
export { DEFAULT_LIMITS, PROXY_PORT, type ProxyLimits } from '@cloudtolocalllm/proxy-spec/container-spec';
export { containerName, networkName, LABEL_OWNER, LABEL_SUBNET, LABEL_TYPE, TYPE_NETWORK, TYPE_PROXY } from '@cloudtolocalllm/proxy-spec/naming';
export { DEFAULT_SUBNET_PREFIX, DEFAULT_SUBNET_RANGE, SubnetExhaustedError } from './subnet-allocator.js';
export { BRIDGE_INTERFACES, ensureIsolationFirewall, ISOLATION_CHAIN, removeIsolationFirewall, type FirewallResult } from '../../firewall/isolation-firewall.js';
