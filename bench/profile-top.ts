/**
 * The top frames of the CPU profiles `bench:tunnel --cpu-prof DIR` leaves (one .cpuprofile per
 * thread of each process, in DIR/<process>/): self time per function, summed over a process's
 * profiles, as a share of the time its threads were not idle.
 *
 *   npx tsx bench/profile-top.ts DIR [--top 15]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '15' } }, allowPositionals: true });
const dir = positionals[0];
if (!dir) {
  process.stderr.write('usage: npx tsx bench/profile-top.ts DIR [--top N]\n');
  process.exit(2);
}
const top = Math.max(1, Number(values.top) || 15);

/** "name file:line", the file shortened to what follows node_modules/ or the checkout. */
function frameName(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const file = url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '').replace(/^.*?\/(bridge|server|bench|test)\//, '$1/');
  return `${functionName || '(anonymous)'}${file ? ` ${file}:${lineNumber + 1}` : ''}`;
}

for (const proc of readdirSync(dir).filter((d) => statSync(join(dir, d)).isDirectory()).sort()) {
  const self = new Map<string, number>();
  let busy = 0;
  for (const file of readdirSync(join(dir, proc)).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, proc, file), 'utf8')) as Profile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    profile.samples.forEach((id, i) => {
      const node = byId.get(id);
      const name = node ? frameName(node) : '?';
      if (name.startsWith('(idle)')) return;
      const us = profile.timeDeltas[i] ?? 0;
      busy += us;
      self.set(name, (self.get(name) ?? 0) + us);
    });
  }
  process.stdout.write(`\n${proc}: ${(busy / 1000).toFixed(0)} ms busy\n`);
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`  ${((us / busy) * 100).toFixed(1).padStart(5)}%  ${name}\n`);
  }
}
