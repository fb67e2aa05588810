/**
 * The `tunnel 1+2 idle` path of bench:tunnel (issue 10): routing's own cost. Three computers of
 * one user on one proxy, as in `tunnel ×3`, but the workloads' model (llama3.2) lives on computer
 * `a` only; `b` and `c` run on an emulator of their own without it, connected and idle. Every
 * model request is routed over the three and goes to `a`: against `tunnel` (one computer), what
 * differs is the routing decision (and the proxy reading the body to find its model), not the
 * CPU of more active bridges, which `tunnel ×3` also carries.
 */
import { fmt, median, ratio, table } from './stats.js';

export const ROUTED_NAMES = ['a', 'b', 'c'] as const;

/** The emulator of `b` and `c`: another model in place of the workloads' one. */
export const IDLE_EMULATOR = { withoutModels: ['llama3.2:latest'], withModels: ['mistral:7b'] };

/** Which emulator each bridge of the path talks to. */
export function emulatorFor(mainUrl: string, idleUrl: string): (name: string) => string {
  return (name) => (name === 'a' ? mainUrl : idleUrl);
}

/**
 * "No measurable latency": within this of the one-computer path, about the run-to-run spread of
 * its medians on a quiet machine here (docs/benchmarks.md, "Three computers"). Worse than that
 * but within the one-computer path's own spread in the same run (max ÷ min of its runs) is
 * reported as WITHIN SPREAD: that run cannot tell a cost from noise.
 */
export const NEAR = 0.05;

type Bucket<R> = Record<string, ReadonlyArray<{ result: R }>>;

interface Figures {
  ttfb: Bucket<{ p50: number; p95: number }>;
  stream: Bucket<{ linesPerSecond: number }>;
  concurrent: Bucket<{ linesPerSecond: number; lastDone: number }>;
  upload: Bucket<{ mibPerSecond: number }>;
}

const PATHS = [
  ['tunnel', 'tunnel'],
  ['three', 'tunnel ×3'],
  ['routed', 'tunnel 1+2 idle'],
] as const;

/**
 * The table of routing's cost: each figure for one computer, three active ones and one of three,
 * the ratios to one computer, and each figure's spread over the one-computer path's own runs
 * (max ÷ min), the yardstick for "measurable". Empty when the run had no `routed` path.
 */
export function routingReport(f: Figures): string {
  if (!(f.ttfb['routed'] ?? f.stream['routed'] ?? f.concurrent['routed'] ?? f.upload['routed'])) return '';
  const rows: string[][] = [];
  const verdicts: string[] = [];
  let named = '';
  const add = <R>(workload: string, metric: string, bucket: Bucket<R>, pick: (r: R) => number, lowerIsBetter: boolean): void => {
    named = workload || named;
    const values = (key: string): number[] => (bucket[key] ?? []).map((s) => pick(s.result));
    const med = (key: string): number => (values(key).length ? median(values(key)) : Number.NaN);
    const one = med('tunnel');
    if (!Number.isFinite(one)) return;
    const own = values('tunnel');
    const spread = Math.max(...own) / Math.min(...own);
    const routed = med('routed');
    rows.push([workload, metric, ...PATHS.map(([k]) => (bucket[k] ? fmt(med(k)) : 'skipped')), ratio(med('three'), one), ratio(routed, one), `${spread.toFixed(2)}×`]);
    if (Number.isFinite(routed)) {
      const r = routed / one;
      const worse = lowerIsBetter ? r - 1 : 1 - r;
      // Worse by more than 5 % but less than the one-computer path's own spread: this run cannot tell.
      const verdict = worse <= NEAR ? 'PASS' : worse <= spread - 1 ? 'WITHIN SPREAD' : 'FAIL';
      verdicts.push(`  ${verdict}  one of three computers within ${NEAR * 100}% of one: ${named} ${metric}: ${r.toFixed(3)}× (one computer's own runs spread ${spread.toFixed(2)}×)`);
    }
  };
  add('TTFB GET /api/version', 'p50 (ms)', f.ttfb, (r) => r.p50, true);
  add('', 'p95 (ms)', f.ttfb, (r) => r.p95, true);
  add('5000-line NDJSON stream', 'lines/s', f.stream, (r) => r.linesPerSecond, false);
  add('64 streams', 'aggregate lines/s', f.concurrent, (r) => r.linesPerSecond, false);
  add('', 'slowest stream done (s)', f.concurrent, (r) => r.lastDone, true);
  add('blob upload (pinned to a)', 'MiB/s', f.upload, (r) => r.mibPerSecond, false);
  const header = ['Workload', 'Metric', ...PATHS.map(([, label]) => label), '×3 ÷ one', '1+2 idle ÷ one', 'one: max ÷ min of its runs'];
  return (
    `\nRouting's cost (issue 10): one computer, three active, one of three with two idle (median of the runs)\n\n` +
    table(header, rows) +
    `\n\nRouting targets (reported, not enforced)\n\n${verdicts.join('\n')}\n`
  );
}

