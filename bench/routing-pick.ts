/**
 * The routing decision alone (issue 10): nanoseconds per pick of server/src/proxy/routing.ts
 * for 1, 3 and 10 connected computers, in this process, no I/O. What the proxy does per routed
 * request beside the relay: classify the path, read the body's `model`, pick a computer.
 *
 *   npm run bench:routing [-- --picks 1000000] [--json out.json]
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { canonicalModelName, classify, modelOfBody, pickAny, pickForModel, type Candidate } from '@cloudtolocalllm/server/proxy/routing';
import { median, table } from './stats.js';

const { values: args } = parseArgs({
  options: { picks: { type: 'string', default: '1000000' }, json: { type: 'string' }, help: { type: 'boolean', default: false } },
  strict: true,
});
if (args.help) {
  process.stdout.write('usage: npm run bench:routing [-- --picks N] [--json FILE]\n');
  process.exit(0);
}
const PICKS = Math.max(1000, Number(args.picks) || 1_000_000);
const RUNS = 5;

/** `n` computers with 8 models each, the wanted one on the last computer only (every model request scans all). */
function computers(n: number): Candidate[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `computer-${i}`,
    models: new Set([...Array.from({ length: 7 }, (_, m) => canonicalModelName(`model-${i}-${m}`)), ...(i === n - 1 ? ['llama3.2:latest'] : [])]),
    loaded: new Set<string>(),
    inFlight: i % 2,
  }));
}

const body = Buffer.from(JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }], stream: true }));

/** ns per call of `run`, median of RUNS runs of PICKS calls (after one run of warm-up). */
function nsPer(run: (i: number) => unknown): number {
  let sink = 0;
  const once = (): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < PICKS; i++) if (run(i) !== undefined) sink += 1;
    return Number(process.hrtime.bigint() - t0) / PICKS;
  };
  once();
  const ns = median(Array.from({ length: RUNS }, once));
  if (sink === 0) throw new Error('the decision picked nothing');
  return ns;
}

const rows: string[][] = [];
const out: Record<string, Record<string, number>> = {};
for (const n of [1, 3, 10]) {
  const cs = computers(n);
  const figures = {
    'pickForModel (model request)': nsPer((i) => pickForModel(cs, 'llama3.2', i)),
    'pickAny (/api/version)': nsPer(() => pickAny(cs)),
    'classify + modelOfBody + pickForModel': nsPer((i) => {
      classify('POST', '/api/chat');
      return pickForModel(cs, modelOfBody(body) ?? '', i);
    }),
  };
  out[String(n)] = figures;
  for (const [what, ns] of Object.entries(figures)) rows.push([String(n), what, ns.toFixed(0)]);
}
process.stdout.write(`routing decision, ${PICKS} picks × ${RUNS} runs (median), ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}\n\n`);
process.stdout.write(table(['computers', 'decision', 'ns per request'], rows) + '\n');
if (args.json) writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), picks: PICKS, runs: RUNS, ns: out }, null, 2));
