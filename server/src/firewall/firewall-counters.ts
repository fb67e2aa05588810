/**
 * The isolation firewall at work: how many packets its rules refused, by rule and by user
 * network. Needs root (iptables); run by whoever keeps the firewall: the `isolation-firewall`
 * service, which publishes the counters in its status file, or a server that installs the rules
 * itself (tests, a single-host server run as root).
 *
 * CTLL-ISOLATION's own rules count by kind (TCP reset, to the host, beyond the host) for all
 * users together. Per user, a chain of the mangle table counts the same packets where they enter:
 * one rule per user network bridge (`ctll-<subnet hex>`, container-spec.ts), each a plain RETURN
 * that only counts, kept in step with the bridges that exist (/sys/class/net) at every sync. The
 * api-backend turns a bridge into its user hash (it made the network); the firewall side never
 * learns who a user is. IPv4 only: Docker 20.10 gives proxies no IPv6 (isolation-firewall.ts).
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { BRIDGE_NAME_PATTERN } from '@cloudtolocalllm/proxy-spec/container-spec';
import { ISOLATION_CHAIN, REFUSALS_CHAIN, REFUSALS_JUMP, iptables } from './isolation-firewall.js';

export interface FirewallCounters {
  /** When they were read (ms since the epoch). */
  readAt: number;
  /** Packets CTLL-ISOLATION refused, by rule: TCP reset, other protocols to the host, to beyond it. */
  refused: { tcp: number; host: number; beyond: number };
  /** Refused packets per user network bridge (`ctll-<subnet hex>`), since its rule was added. */
  byBridge: Record<string, number>;
}

/**
 * The rules of `iptables -S CHAIN -v` with their packet counts, as [rule without the counters,
 * packets]. iptables-nft puts the counters between the matches and the target
 * (`-A C -i ctll-0ac80000 -c 7 420 -j RETURN`), iptables-legacy at the end: either is read.
 */
export function parseCounted(chain: string, listing: string): Array<[rule: string, packets: number]> {
  const prefix = `-A ${chain} `;
  const out: Array<[string, number]> = [];
  for (const line of listing.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const rule = line.slice(prefix.length);
    const counted = /(?:^|\s)-c (\d+) (\d+)(?=\s|$)/.exec(rule);
    if (!counted) continue;
    out.push([(rule.slice(0, counted.index) + rule.slice(counted.index + counted[0].length)).replace(/\s+/g, ' ').trim(), Number(counted[1])]);
  }
  return out;
}

/** What CTLL-ISOLATION's listing says it refused, by kind of rule. */
export function refusedByRule(listing: string): FirewallCounters['refused'] {
  const refused = { tcp: 0, host: 0, beyond: 0 };
  for (const [rule, packets] of parseCounted(ISOLATION_CHAIN, listing)) {
    if (!rule.includes('-j REJECT')) continue;
    if (rule.includes('tcp-reset')) refused.tcp += packets;
    else if (rule.includes('--dst-type LOCAL')) refused.host += packets;
    else refused.beyond += packets;
  }
  return refused;
}

/** Packets per bridge from CTLL-REFUSALS's listing. */
export function refusedByBridge(listing: string): Record<string, number> {
  const byBridge: Record<string, number> = {};
  for (const [rule, packets] of parseCounted(REFUSALS_CHAIN, listing)) {
    const bridge = /^-i (\S+) -j RETURN$/.exec(rule)?.[1];
    if (bridge && BRIDGE_NAME_PATTERN.test(bridge)) byBridge[bridge] = packets;
  }
  return byBridge;
}

/** The user network bridges on this host now. */
export function userBridges(list: () => string[] = () => readdirSync('/sys/class/net')): string[] {
  try {
    return list().filter((name) => BRIDGE_NAME_PATTERN.test(name)).sort();
  } catch {
    return [];
  }
}

class RestoreMissing extends Error {}

/** `iptables-restore --noflush` with `rules` on its input (the same places as iptables is looked for). */
async function iptablesRestore(rules: string): Promise<void> {
  for (const command of ['iptables-restore', '/usr/sbin/iptables-restore', '/sbin/iptables-restore']) {
    const failure = await new Promise<Error | undefined>((resolve) => {
      const child = execFile(command, ['-w', '10', '--noflush'], { timeout: 20_000, env: { ...process.env, LC_ALL: 'C' } }, (error, _stdout, stderr) => {
        if (!error) return resolve(undefined);
        const code = (error as NodeJS.ErrnoException).code;
        resolve(Object.assign(new Error(`${command} --noflush failed: ${stderr.trim().split('\n')[0] || error.message}`), { missing: code === 'ENOENT' }));
      });
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(rules);
    });
    if (!failure) return;
    if (!(failure as Error & { missing?: boolean }).missing) throw failure;
  }
  throw new RestoreMissing('iptables-restore is not installed (looked on PATH and in /usr/sbin, /sbin)');
}

/**
 * Makes CTLL-REFUSALS count for exactly the bridges there are (rules for new ones appended,
 * rules of gone ones deleted; the others keep their counts), then reads every counter.
 * Throws with iptables' own message when it cannot (not root, no iptables).
 */
export async function syncAndReadCounters(bridges: readonly string[] = userBridges(), now = Date.now): Promise<FirewallCounters> {
  const mangle = ['-t', 'mangle'];
  if ((await iptables([...mangle, '-S', REFUSALS_CHAIN], [0, 1])).code !== 0) await iptables([...mangle, '-N', REFUSALS_CHAIN], [0, 1]);
  if ((await iptables([...mangle, '-C', 'PREROUTING', ...REFUSALS_JUMP], [0, 1])).code !== 0) await iptables([...mangle, '-I', 'PREROUTING', '1', ...REFUSALS_JUMP]);
  const have = new Set(Object.keys(refusedByBridge((await iptables([...mangle, '-S', REFUSALS_CHAIN, '-v'])).stdout)));
  const want = new Set(bridges);
  const changes = [
    ...[...want].filter((b) => !have.has(b)).map((b) => `-A ${REFUSALS_CHAIN} -i ${b} -j RETURN`),
    ...[...have].filter((b) => !want.has(b)).map((b) => `-D ${REFUSALS_CHAIN} -i ${b} -j RETURN`),
  ];
  // One iptables-restore for all of them: 1,000 new bridges (a server's first scrape) would
  // otherwise be 1,000 iptables calls of some 10 ms each. Names are BRIDGE_NAME_PATTERN's only.
  if (changes.length) {
    try {
      await iptablesRestore(`*mangle\n${changes.join('\n')}\nCOMMIT\n`);
    } catch (e) {
      if (!(e instanceof RestoreMissing)) throw e;
      // An image or host without iptables-restore: one call per change, slower, the same rules.
      for (const change of changes) await iptables([...mangle, ...change.split(' ')], change.startsWith('-D') ? [0, 1] : [0]);
    }
  }
  const [chain, accounting] = await Promise.all([iptables(['-S', ISOLATION_CHAIN, '-v'], [0, 1]), iptables([...mangle, '-S', REFUSALS_CHAIN, '-v'])]);
  return { readAt: now(), refused: refusedByRule(chain.stdout), byBridge: refusedByBridge(accounting.stdout) };
}
