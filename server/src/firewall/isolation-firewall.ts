/**
 * The host firewall that makes the proxies' isolation real. An internal Docker network only
 * stops *forwarding* (and, on Docker 20.10, silently drops it, so a probe hangs until it times
 * out); the bridge's gateway address belongs to the host, so without this every proxy could open
 * connections to any host service listening on 0.0.0.0 (through its own gateway, another user's
 * gateway, docker0's address or the host's public address), the cloud server itself included.
 *
 * One chain of ours, jumped to for everything that *enters* the host from a user network's bridge
 * (every one is named `ctll-<subnet hex>`, see container-spec.ts, so `-i ctll-+` matches them all):
 *
 *   -N CTLL-ISOLATION
 *   -A CTLL-ISOLATION -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
 *   -A CTLL-ISOLATION -p tcp -j REJECT --reject-with tcp-reset
 *   -A CTLL-ISOLATION -m addrtype --dst-type LOCAL -j REJECT --reject-with icmp-port-unreachable
 *   -A CTLL-ISOLATION -j REJECT --reject-with icmp-net-unreachable
 *   -I INPUT 1 -i ctll-+ -j CTLL-ISOLATION          (to the host itself)
 *   -I DOCKER-USER 1 -i ctll-+ -j CTLL-ISOLATION    (through the host: other users, the internet)
 *
 * (ip6tables: DOCKER-USER and its jump from FORWARD are created too when Docker has not.)
 *
 * - replies on connections the host opened (the API server → a proxy's /health, its bridge
 *   WebSocket, relayed requests) are ESTABLISHED and pass; so does ICMP about them (RELATED);
 * - any other TCP connection a proxy opens, to the host or through it (another user's proxy,
 *   the internet), is refused at once with a TCP reset (ECONNREFUSED) instead of being dropped
 *   and timing out. The same answer for every address and port, so probing tells a proxy
 *   nothing; and a reset, unlike ICMP, is not rate-limited by the kernel (icmp_ratelimit lets
 *   a burst of about 6 through per destination, drops the rest, and the SYN is retried only a
 *   second later);
 * - anything else (UDP...) gets ICMP port unreachable for the host's addresses (ECONNREFUSED)
 *   and network unreachable for anything beyond (ENETUNREACH).
 *
 * IPv6 gets the same with ip6tables (tcp-reset, icmp6-port-unreachable, icmp6-no-route).
 * Defence in depth: the host's side of every bridge has an IPv6 link-local address, while
 * Docker 20.10 disables IPv6 inside containers on networks without it (and a proxy has no
 * capability to turn it back on). Skipped when the kernel has no IPv6 or ip6tables is missing.
 *
 * Idempotent: the chain's content is compared with what it should be and rebuilt only if it
 * differs (new rules inserted at the top first, old ones then removed: never a moment without
 * them); each jump is added only if `iptables -C` does not find it as the parent chain's first
 * rule, and other copies (two servers ensuring at once, or one appended below DOCKER-USER's
 * RETURN) are removed. Calls within one process are serialized. Everything runs `iptables`
 * through execFile, no shell.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { silentLogger, type Logger } from '../log.js';

export const ISOLATION_CHAIN = 'CTLL-ISOLATION';
/** The interface match for every user network's bridge (container-spec.ts bridgeName). */
export const BRIDGE_INTERFACES = 'ctll-+';

export type FirewallResult = { ok: true } | { ok: false; error: string };

/**
 * What the Docker runtime does about this firewall (CTLL_FIREWALL): 'enforce' starts no proxy
 * without it, 'warn' starts them anyway with a warning, 'off' leaves the host firewall alone.
 */
export const FIREWALL_MODES = ['enforce', 'warn', 'off'] as const;
export type FirewallMode = (typeof FIREWALL_MODES)[number];

interface Family {
  name: 'IPv4' | 'IPv6';
  /** Names tried in order: PATH first, then where distributions put it (often not on a user's PATH). */
  commands: readonly string[];
  rules: readonly (readonly string[])[];
}

const ESTABLISHED = ['-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'RETURN'] as const;
const TCP = ['-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'] as const;
const TO_HOST = ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'REJECT', '--reject-with'] as const;

const IPV4: Family = {
  name: 'IPv4',
  commands: ['iptables', '/usr/sbin/iptables', '/sbin/iptables'],
  rules: [ESTABLISHED, TCP, [...TO_HOST, 'icmp-port-unreachable'], ['-j', 'REJECT', '--reject-with', 'icmp-net-unreachable']],
};
const IPV6: Family = {
  name: 'IPv6',
  commands: ['ip6tables', '/usr/sbin/ip6tables', '/sbin/ip6tables'],
  rules: [ESTABLISHED, TCP, [...TO_HOST, 'icmp6-port-unreachable'], ['-j', 'REJECT', '--reject-with', 'icmp6-no-route']],
};

/** The parent chains and the jump into ours (DOCKER-USER: what Docker leaves to its users in FORWARD). */
const PARENTS = ['INPUT', 'DOCKER-USER'] as const;
const JUMP = ['-i', BRIDGE_INTERFACES, '-j', ISOLATION_CHAIN] as const;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

class CommandMissing extends Error {}

/** One iptables call; resolves with its exit code (never rejects on a non-zero exit). */
function exec(command: string, args: readonly string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(command, ['-w', '10', ...args], { timeout: 20_000, env: { ...process.env, LC_ALL: 'C' } }, (error, stdout, stderr) => {
      if (!error) return resolve({ code: 0, stdout, stderr });
      const e = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
      if (e.code === 'ENOENT') return reject(new CommandMissing(`${command} not found`));
      if (typeof e.code === 'number') return resolve({ code: e.code, stdout, stderr });
      reject(new Error(`${command} ${args.join(' ')}: ${e.killed ? 'did not finish within 20 s' : e.message}`));
    });
  });
}

function describe(command: string, args: readonly string[], out: Outcome): string {
  const said = out.stderr.trim().split('\n')[0] || `exit code ${out.code}`;
  return `\`${command} ${args.join(' ')}\` failed: ${said}`;
}

/** The iptables of one address family, found on first use. */
class Tables {
  private command: string | undefined;

  constructor(readonly family: Family) {}

  /** Runs a command, throwing on failure unless the exit code is in `allowed`. */
  async run(args: readonly string[], allowed: readonly number[] = [0]): Promise<Outcome> {
    if (this.command) return this.check(this.command, args, await exec(this.command, args), allowed);
    for (const candidate of this.family.commands) {
      try {
        const out = await exec(candidate, args);
        this.command = candidate;
        return this.check(candidate, args, out, allowed);
      } catch (e) {
        if (!(e instanceof CommandMissing)) throw e;
      }
    }
    throw new CommandMissing(`${this.family.commands[0]} is not installed (looked on PATH and in /usr/sbin, /sbin)`);
  }

  private check(command: string, args: readonly string[], out: Outcome, allowed: readonly number[]): Outcome {
    if (!allowed.includes(out.code)) throw new Error(describe(command, args, out));
    return out;
  }

  /** The chain's rules as `iptables -S` prints them (without the -A CHAIN), or undefined if it does not exist. */
  async rules(chain: string): Promise<string[] | undefined> {
    const out = await this.run(['-S', chain], [0, 1]);
    if (out.code !== 0) {
      // Exit code 1 is also "permission denied" on some versions: tell that apart from "no such chain".
      if (/denied|must be root|not permitted/i.test(out.stderr)) throw new Error(describe(this.command ?? this.family.commands[0]!, ['-S', chain], out));
      return undefined;
    }
    const prefix = `-A ${chain} `;
    return out.stdout
      .split('\n')
      .filter((l) => l.startsWith(prefix))
      .map((l) => l.slice(prefix.length).trim());
  }

  async ensureChain(chain: string): Promise<boolean> {
    if ((await this.rules(chain)) !== undefined) return false;
    await this.run(['-N', chain], [0, 1]);
    if ((await this.rules(chain)) === undefined) throw new Error(`${this.family.name}: could not create the chain ${chain}`);
    return true;
  }

  /** Makes `chain` hold exactly `wanted`, in order. True if anything changed. */
  async ensureContent(chain: string, wanted: readonly (readonly string[])[]): Promise<boolean> {
    const have = await this.rules(chain);
    const want = wanted.map((r) => r.join(' '));
    if (have && have.length === want.length && have.every((r, i) => r === want[i])) return false;
    // New rules on top first, then the old ones below them go: the chain is never empty.
    for (const [i, rule] of wanted.entries()) await this.run(['-I', chain, String(i + 1), ...rule]);
    const total = (await this.rules(chain))?.length ?? 0;
    for (let position = total; position > wanted.length; position--) await this.run(['-D', chain, String(position)]);
    return true;
  }

  /**
   * Makes `rule` the first rule of `parent`, and its only copy: a copy further down could come
   * after a RETURN or ACCEPT (DOCKER-USER ends with Docker's RETURN). The usual case, already
   * there and first, is one `-C` and one `-S`. True if anything changed.
   */
  async ensureFirst(parent: string, rule: readonly string[]): Promise<boolean> {
    const text = rule.join(' ');
    const present = (await this.run(['-C', parent, ...rule], [0, 1])).code === 0;
    let rules = present ? await this.rules(parent) : [];
    if (present && rules?.[0] === text && rules.filter((r) => r === text).length === 1) return false;
    // The new copy goes in on top before any old one goes: never a moment without it.
    if (rules?.[0] !== text) await this.run(['-I', parent, '1', ...rule]);
    // Then the other copies, by position (`-D` by rule would take the first, the one we want),
    // from the bottom, listing again before each (a short window for others' edits to shift one).
    for (;;) {
      rules = (await this.rules(parent)) ?? [];
      const extra = rules.lastIndexOf(text);
      if (extra <= 0) return true;
      await this.run(['-D', parent, String(extra + 1)]);
    }
  }

  /** Removes every copy of `rule` from `parent` (missing chain or rule: nothing to do). */
  async removeAll(parent: string, rule: readonly string[]): Promise<void> {
    for (let i = 0; i < 100 && (await this.run(['-C', parent, ...rule], [0, 1, 2])).code === 0; i++) {
      await this.run(['-D', parent, ...rule]);
    }
  }
}

/** The mangle table's chain that counts refused packets per user network (firewall-counters.ts). */
export const REFUSALS_CHAIN = 'CTLL-REFUSALS';
/**
 * The jump into it: every packet from a user network that is not part of a connection the host
 * opened, exactly the packets CTLL-ISOLATION refuses (in INPUT or DOCKER-USER, later).
 */
export const REFUSALS_JUMP = ['-i', BRIDGE_INTERFACES, '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED', '-j', REFUSALS_CHAIN] as const;

async function removeAccounting(tables: Tables): Promise<void> {
  for (let i = 0; i < 100 && (await tables.run(['-t', 'mangle', '-C', 'PREROUTING', ...REFUSALS_JUMP], [0, 1, 2])).code === 0; i++) {
    await tables.run(['-t', 'mangle', '-D', 'PREROUTING', ...REFUSALS_JUMP]);
  }
  if ((await tables.run(['-t', 'mangle', '-S', REFUSALS_CHAIN], [0, 1])).code === 0) {
    await tables.run(['-t', 'mangle', '-F', REFUSALS_CHAIN]);
    await tables.run(['-t', 'mangle', '-X', REFUSALS_CHAIN]);
  }
}

type FamilyState = 'installed' | 'present' | 'skipped';

async function ensureFamily(tables: Tables): Promise<FamilyState> {
  let changed = await tables.ensureChain(ISOLATION_CHAIN);
  changed = (await tables.ensureContent(ISOLATION_CHAIN, tables.family.rules)) || changed;
  // dockerd creates DOCKER-USER and jumps to it first thing in FORWARD; if it has not (yet),
  // do the same: Docker keeps an existing DOCKER-USER and its rules, and its own jump replaces ours.
  if (await tables.ensureChain('DOCKER-USER')) changed = true;
  const forward = await tables.rules('FORWARD');
  if (!forward?.includes('-j DOCKER-USER')) {
    await tables.run(['-I', 'FORWARD', '1', '-j', 'DOCKER-USER']);
    changed = true;
  }
  for (const parent of PARENTS) changed = (await tables.ensureFirst(parent, JUMP)) || changed;
  return changed ? 'installed' : 'present';
}

const ipv4 = new Tables(IPV4);
/** IPv4's iptables, for the refusal counters (firewall-counters.ts); calls are serialized with the rest. */
export function iptables(args: readonly string[], allowed: readonly number[] = [0]): Promise<{ code: number; stdout: string }> {
  return serialized(() => ipv4.run(args, allowed));
}
const ipv6 = new Tables(IPV6);
const kernelHasIpv6 = (): boolean => existsSync('/proc/net/if_inet6');

/** Serializes ensure/remove within this process (check-then-insert is not atomic). */
let queue: Promise<unknown> = Promise.resolve();
function serialized<T>(op: () => Promise<T>): Promise<T> {
  const next = queue.then(op, op);
  queue = next.catch(() => undefined);
  return next;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Installs the rules (see the top of this file) if they are not there yet. Never throws: when
 * they cannot be installed (not root, no iptables) the result says why.
 */
export function ensureIsolationFirewall(log: Logger = silentLogger): Promise<FirewallResult> {
  return serialized(async (): Promise<FirewallResult> => {
    let v4: FamilyState;
    try {
      v4 = await ensureFamily(ipv4);
    } catch (e) {
      return { ok: false, error: message(e) };
    }
    let v6: FamilyState = 'skipped';
    if (kernelHasIpv6()) {
      try {
        v6 = await ensureFamily(ipv6);
      } catch (e) {
        if (!(e instanceof CommandMissing)) return { ok: false, error: `IPv6: ${message(e)}` };
        log.warn('ip6tables is not installed: IPv6 traffic from proxies is not filtered', { error: e.message });
      }
    }
    if (v4 === 'installed' || v6 === 'installed') {
      log.info('isolation firewall installed', { chain: ISOLATION_CHAIN, interfaces: BRIDGE_INTERFACES, ipv4: v4, ipv6: v6 });
    }
    return { ok: true };
  });
}

/**
 * Removes the jumps and the chain (both address families), leaving DOCKER-USER to Docker. For
 * tests and uninstalling; the runtime installs them again before its next start.
 */
export function removeIsolationFirewall(): Promise<FirewallResult> {
  return serialized(async (): Promise<FirewallResult> => {
    for (const tables of kernelHasIpv6() ? [ipv4, ipv6] : [ipv4]) {
      try {
        for (const parent of PARENTS) await tables.removeAll(parent, JUMP);
        if (tables === ipv4) await removeAccounting(tables);
        if ((await tables.rules(ISOLATION_CHAIN)) !== undefined) {
          await tables.run(['-F', ISOLATION_CHAIN]);
          await tables.run(['-X', ISOLATION_CHAIN]);
        }
      } catch (e) {
        if (tables === ipv6 && e instanceof CommandMissing) continue;
        return { ok: false, error: `${tables.family.name}: ${message(e)}` };
      }
    }
    return { ok: true };
  });
}
