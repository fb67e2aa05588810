/**
 * The top frames of the CPU profiles `bench:tunnel --cpu-prof DIR` leaves (one .cpuprofile per
 * thread of each process, in DIR/<process>/): self time per function, summed over a process's
 * profiles, as a share of the time its threads were not idle. With --inclusive, the time of
 * every function with what it called (each function once per sample, however deep it recurs):
 * how much of a process one of our functions costs, not only its own lines.
 *
 *   npx tsx bench/profile-top.ts DIR [--top 15] [--inclusive]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '15' }, inclusive: { type: 'boolean', default: false } },
  allowPositionals: true,
});
const dir = positionals[0];
if (!dir) {
  process.stderr.write('usage: npx tsx bench/profile-top.ts DIR [--top N] [--inclusive]\n');
  process.exit(2);
}
const top = Math.max(1, Number(values.top) || 15);

/** "name file:line", the file shortened to what follows node_modules/ or the checkout. */
function frameName(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const file = url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '').replace(/^.*?\/(bridge|server|bench|test)\//, '$1/');
  return `${functionName || '(anonymous)'}${file ? ` ${file}:${lineNumber + 1}` : ''}`;
}

/** Every distinct frame name on the stack of a sample, from its leaf to the root. */
function stackNames(leaf: number, byId: Map<number, ProfileNode>, parentOf: Map<number, number>): string[] {
  const names = new Set<string>();
  for (let id: number | undefined = leaf; id !== undefined; id = parentOf.get(id)) {
    const node = byId.get(id);
    if (node && node.callFrame.functionName !== '(root)') names.add(frameName(node));
  }
  return [...names];
}

for (const proc of readdirSync(dir).filter((d) => statSync(join(dir, d)).isDirectory()).sort()) {
  const self = new Map<string, number>();
  let busy = 0;
  for (const file of readdirSync(join(dir, proc)).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, proc, file), 'utf8')) as Profile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parentOf = new Map<number, number>();
    for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);
    profile.samples.forEach((id, i) => {
      const node = byId.get(id);
      const name = node ? frameName(node) : '?';
      if (name.startsWith('(idle)')) return;
      const us = profile.timeDeltas[i] ?? 0;
      busy += us;
      const charged = values.inclusive ? stackNames(id, byId, parentOf) : [name];
      for (const frame of charged) self.set(frame, (self.get(frame) ?? 0) + us);
    });
  }
  process.stdout.write(`\n${proc}: ${(busy / 1000).toFixed(0)} ms busy\n`);
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`  ${((us / busy) * 100).toFixed(1).padStart(5)}%  ${name}\n`);
  }
}
