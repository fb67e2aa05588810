/**
 * Per-user subnets for the proxies' networks.
 *
 * Why we allocate at all: Docker's default address pools give only about 29 user-defined bridge
 * networks before "could not find an available, non-overlapping IPv4 address pool", and every
 * user needs one network of their own. So each network is created with an explicit subnet
 * carved from a configured range (default 10.200.0.0/16 in /28 blocks: 4096 users).
 *
 * Two layers:
 *  - findFreeSubnet(): pure, the first block of the range that overlaps nothing in use.
 *  - DockerSubnetAllocator: asks the engine, at allocation time, for the subnets of *every*
 *    network (ours, Compose's, anyone's), so it never overlaps them; serialises allocations so
 *    concurrent starts never pick the same block; keeps no long-lived state, so a subnet is
 *    free again as soon as its network is gone (whoever removed it).
 */
import type Dockerode from 'dockerode';
import { blockSize, cidrEnd, formatCidr, overlaps, parseCidr, type Cidr } from '@cloudtolocalllm/proxy-spec/cidr';
import { DEFAULT_SUBNET_RANGE } from '@cloudtolocalllm/proxy-spec/container-spec';

export { DEFAULT_SUBNET_RANGE };
/** 16 addresses: network, gateway, the proxy, broadcast, and room to spare. */
export const DEFAULT_SUBNET_PREFIX = 28;
/** A user network needs the network address, a gateway, the proxy and a broadcast address. */
export const MAX_SUBNET_PREFIX = 30;

export interface SubnetPlan {
  range: Cidr;
  prefix: number;
}

/** Validates the configured range and block size, with errors that say what to change. */
export function subnetPlan(range: string = DEFAULT_SUBNET_RANGE, prefix: number = DEFAULT_SUBNET_PREFIX): SubnetPlan {
  let parsed: Cidr;
  try {
    parsed = parseCidr(range);
  } catch (e) {
    throw new Error(`invalid subnet range (CTLL_SUBNET_RANGE): ${(e as Error).message}`);
  }
  if (!Number.isInteger(prefix) || prefix < parsed.prefix || prefix > MAX_SUBNET_PREFIX) {
    throw new Error(
      `invalid subnet size /${prefix} (CTLL_SUBNET_PREFIX): it must be between the range's own /${parsed.prefix} and /${MAX_SUBNET_PREFIX} ` +
        `(a user network needs at least 4 addresses)`,
    );
  }
  return { range: parsed, prefix };
}

/** How many user subnets the plan holds. */
export function capacity(plan: SubnetPlan): number {
  return blockSize(plan.range.prefix) / blockSize(plan.prefix);
}

/**
 * The first /prefix block of the range (in address order) that overlaps none of `used`, or
 * undefined. `used` may hold blocks of any size, inside, around or outside the range.
 * Runs in O(u log u) whatever the range size: it jumps past each used interval instead of
 * testing every block.
 */
export function findFreeSubnet(plan: SubnetPlan, used: readonly Cidr[]): Cidr | undefined {
  const size = blockSize(plan.prefix);
  const rangeStart = plan.range.network;
  const rangeEnd = cidrEnd(plan.range);
  // Used intervals that touch the range, sorted and merged into disjoint [start, end) pairs.
  const intervals = used
    .filter((c) => overlaps(c, plan.range))
    .map((c) => [c.network, cidrEnd(c)] as [number, number])
    .sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [start, end] of intervals) {
    const last = merged[merged.length - 1];
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  let candidate = rangeStart;
  let i = 0;
  while (candidate + size <= rangeEnd) {
    while (i < merged.length && merged[i]![1] <= candidate) i++;
    const next = merged[i];
    if (!next || next[0] >= candidate + size) return { network: candidate, prefix: plan.prefix };
    // Blocks are aligned to their size and the range start is aligned to the (larger) range
    // size, so rounding the interval's end up to a multiple of `size` gives the next candidate.
    candidate = Math.ceil(next[1] / size) * size;
  }
  return undefined;
}

/** How many of `used` take space in the range: the "N in use" of the exhaustion message. */
export function countInRange(plan: SubnetPlan, used: readonly Cidr[]): number {
  return new Set(used.filter((c) => overlaps(c, plan.range)).map(formatCidr)).size;
}

export class SubnetExhaustedError extends Error {
  constructor(plan: SubnetPlan, inUse: number) {
    super(
      `no free /${plan.prefix} subnet left in ${formatCidr(plan.range)}: ${inUse} in use; raise CTLL_SUBNET_RANGE ` +
        `(a larger range holds more users) or remove unused networks`,
    );
    this.name = 'SubnetExhaustedError';
  }
}

/**
 * Docker's answers when the block is taken after all: its subnet overlaps a network created by
 * someone else meanwhile, or a network with the same Linux bridge name (derived from the block,
 * container-spec.ts) still exists in the engine although the listing no longer showed it (seen
 * at 600 proxies while others' networks were being removed). Either way: another block.
 */
export function isOverlapError(error: unknown): boolean {
  return /overlap|same bridge name/i.test(error instanceof Error ? error.message : String(error));
}

/** IPv4 subnets of every network on the engine (IPv6 and malformed entries skipped). */
export async function subnetsInUse(docker: Pick<Dockerode, 'listNetworks'>): Promise<Cidr[]> {
  const networks = await docker.listNetworks();
  const out: Cidr[] = [];
  for (const network of networks) {
    for (const config of network.IPAM?.Config ?? []) {
      const subnet = (config as { Subnet?: string }).Subnet;
      if (!subnet || subnet.includes(':')) continue;
      try {
        out.push(parseCidr(subnet, { strict: false }));
      } catch {
        // Not ours and not IPv4 as we understand it: it cannot overlap what we hand out.
      }
    }
  }
  return out;
}

export interface DockerSubnetAllocatorOptions {
  range?: string;
  prefix?: number;
  /** How often to pick another block when Docker reports an overlap (another process won the race). */
  overlapRetries?: number;
}

export class DockerSubnetAllocator {
  readonly plan: SubnetPlan;
  private readonly overlapRetries: number;
  /** Blocks handed out whose network may not exist yet: invisible to listNetworks, so remembered. */
  private readonly pending = new Set<string>();
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly docker: Pick<Dockerode, 'listNetworks'>,
    options: DockerSubnetAllocatorOptions = {},
  ) {
    this.plan = subnetPlan(options.range, options.prefix);
    this.overlapRetries = options.overlapRetries ?? 3;
  }

  get range(): string {
    return formatCidr(this.plan.range);
  }

  /**
   * Picks a free subnet and runs `create` (which makes the network) with it. The block stays
   * reserved until `create` settles; after that the engine lists the network (or it failed and
   * the block is free again), so there is nothing to release later.
   */
  async withSubnet<T>(create: (subnet: string) => Promise<T>): Promise<T> {
    const avoid: Cidr[] = [];
    for (let attempt = 0; ; attempt++) {
      const subnet = await this.reserve(avoid);
      try {
        return await create(subnet);
      } catch (e) {
        if (attempt >= this.overlapRetries || !isOverlapError(e)) throw e;
        avoid.push(parseCidr(subnet));
      } finally {
        this.pending.delete(subnet);
      }
    }
  }

  /** Serialised: one allocation at a time looks at the engine and picks. */
  private reserve(avoid: readonly Cidr[]): Promise<string> {
    const run = this.lock.then(async () => {
      // Snapshot the pending set *before* asking the engine: a block whose network finishes
      // while listNetworks is in flight is then either still in this snapshot or in the listing.
      const pending = [...this.pending].map((s) => parseCidr(s));
      const used = [...(await subnetsInUse(this.docker)), ...pending, ...avoid];
      const free = findFreeSubnet(this.plan, used);
      if (!free) throw new SubnetExhaustedError(this.plan, countInRange(this.plan, used));
      const subnet = formatCidr(free);
      this.pending.add(subnet);
      return subnet;
    });
    this.lock = run.catch(() => undefined);
    return run;
  }
}
