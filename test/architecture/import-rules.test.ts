/**
 * Who may import what (tools/lint/dependency-rules.cjs, drawn in docs/architecture.md), checked
 * by dependency-cruiser over every file: the tree breaks no rule, and a tree made to break them
 * fails with the file, the import and the rule that forbids it.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RULES = join(ROOT, 'tools/lint/dependency-rules.cjs');
const DEPCRUISE = join(ROOT, 'tools/lint/node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
const FOLDERS = ['bridge', 'main', 'renderer', 'server', 'test', 'bench', 'scripts'];

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
}
interface CruiseResult {
  summary: { violations: Violation[]; totalCruised: number; totalDependenciesCruised: number };
}

/** Runs dependency-cruiser with the project's rules over `folders` of `cwd`. */
function cruise(cwd: string, folders: string[]): Promise<CruiseResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [DEPCRUISE, '--config', RULES, '--output-type', 'json', ...folders],
      { cwd, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        // Exit code 0: no violation; otherwise the count of errors (the JSON says which).
        if (!stdout.trim().startsWith('{')) return reject(new Error(`dependency-cruiser failed${error ? ` (${error.message})` : ''}:\n${stderr}${stdout.slice(0, 2000)}`));
        resolve(JSON.parse(stdout) as CruiseResult);
      },
    );
  });
}

// The rules' comments, to say in a failure why an import is forbidden.
const require = (await import('node:module')).createRequire(import.meta.url);
// eslint-disable-next-line security/detect-non-literal-require -- RULES is this project's own rules file, a constant path
const comments = new Map<string, string>((require(RULES) as { forbidden: Array<{ name: string; comment: string }> }).forbidden.map((r) => [r.name, r.comment]));
const describeViolation = (v: Violation): string => `${v.from} → ${v.to}: ${v.rule.name} (${comments.get(v.rule.name) ?? 'no comment'})`;

describe('import rules (dependency-cruiser, tools/lint/dependency-rules.cjs)', () => {
  before(() => {
    assert.ok(existsSync(DEPCRUISE), `dependency-cruiser is not installed at ${relative(ROOT, DEPCRUISE)} (npm run setup installs tools/lint)`);
  });

  test('the tree breaks none of them', async () => {
    const result = await cruise(ROOT, FOLDERS);
    assert.ok(result.summary.totalCruised > 250, `only ${result.summary.totalCruised} files cruised: the scan is missing folders`);
    assert.deepEqual(result.summary.violations.map(describeViolation), []);
  });

  test('a tree that breaks them fails with the file, the import and the rule', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ctll-import-rules-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const write = (path: string, text: string): void => {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    };
    const manifest = (name: string, extra: object = {}): string => JSON.stringify({ name, version: '0.1.0', type: 'module', ...extra });
    write('package.json', manifest('cloudtolocalllm', { workspaces: ['bridge', 'server', 'server/api-contract', 'server/docker-api-filter'] }));
    write('tsconfig.json', JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }));
    write('bridge/package.json', manifest('@cloudtolocalllm/bridge', { exports: { '.': './bridge.ts' } }));
    write('bridge/bridge.ts', 'export const bridge = 1;\n');
    write('server/package.json', manifest('@cloudtolocalllm/server', { exports: { './*': './src/*.ts' } }));
    write('server/src/cloud-server.ts', 'export const server = 1;\n');
    write('server/api-contract/package.json', manifest('@cloudtolocalllm/api-contract', { exports: { '.': './index.ts' } }));
    write('server/docker-api-filter/package.json', manifest('@cloudtolocalllm/docker-api-filter', { exports: { '.': './docker-api-filter.ts' } }));
    // A package npm hoisted to the top, declared by no package.json of the fixture.
    write('node_modules/dockerode/package.json', JSON.stringify({ name: 'dockerode', version: '1.0.0', main: 'index.js' }));
    write('node_modules/dockerode/index.js', 'module.exports = {};\n');
    mkdirSync(join(dir, 'node_modules/@cloudtolocalllm'), { recursive: true });
    for (const [name, folder] of [['bridge', 'bridge'], ['server', 'server'], ['api-contract', 'server/api-contract'], ['docker-api-filter', 'server/docker-api-filter']] as const) {
      symlinkSync(join('..', '..', folder), join(dir, 'node_modules/@cloudtolocalllm', name));
    }
    // The breaks, one per rule.
    write('main/tray.ts', "import { server } from '@cloudtolocalllm/server/cloud-server';\nexport const tray = server;\n");
    write('server/src/reach-in.ts', "import { bridge } from '../../bridge/bridge.js';\nexport const x = bridge;\n");
    write('server/docker-api-filter/docker-api-filter.ts', "import { server } from '@cloudtolocalllm/server/cloud-server';\nexport const filter = server;\n");
    write('server/api-contract/index.ts', "import type { IncomingMessage } from 'node:http';\nexport type Req = IncomingMessage;\n");
    write('bridge/hoisted.ts', "import Docker from 'dockerode';\nexport const d = Docker;\n");
    write('bridge/missing.ts', "import { nothing } from './not-there.js';\nexport const n = nothing;\n");

    const found = (await cruise(dir, ['bridge', 'main', 'server'])).summary.violations.map((v) => `${v.from} → ${v.to}: ${v.rule.name}`).sort();
    assert.deepEqual(found, [
      'bridge/hoisted.ts → node_modules/dockerode/index.js: declared-dependencies-only',
      'bridge/missing.ts → ./not-there.js: resolvable-imports-only',
      'main/tray.ts → server/src/cloud-server.ts: desktop-on-bridge-and-api-contract',
      'server/api-contract/index.ts → http: api-contract-runs-anywhere',
      'server/docker-api-filter/docker-api-filter.ts → server/src/cloud-server.ts: filter-on-proxy-spec',
      'server/src/reach-in.ts → bridge/bridge.ts: relative-import-out-of-server',
      'server/src/reach-in.ts → bridge/bridge.ts: server-on-contracts',
    ]);
  });
});
