/**
 * The security lint (tools/lint/eslint.config.js: eslint-plugin-security, no-unsanitized, ESLint's
 * eval rules) over every file of our code. A finding fails with its place and rule; so does a
 * disable comment without a reason, a stale one, or a file the lint did not see. A sample of
 * dangerous code proves the rules are on.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../deploy/deploy-harness.js';
import { LINT_CONFIG, LINT_PACKAGE } from './security-checks.js';

const run = promisify(execFile);
const ESLINT = join(LINT_PACKAGE, 'node_modules/eslint/bin/eslint.js');

interface LintResult {
  filePath: string;
  messages: Array<{ ruleId: string | null; line: number; column: number; message: string }>;
}

/** Runs the lint; with `stdin`, on that text as if it were the file `name`. */
function eslint(args: string[], stdin?: string): Promise<LintResult[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ESLINT, '--config', LINT_CONFIG, '--format', 'json', ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      // 0: clean, 1: findings (in the JSON); anything else is the lint itself failing.
      if (code !== 0 && code !== 1) reject(new Error(`eslint exited with ${code}:\n${err}${out.slice(0, 2000)}`));
      else resolve(JSON.parse(out) as LintResult[]);
    });
    child.stdin.end(stdin ?? '');
  });
}

const SAMPLE = `import { exec } from 'node:child_process';
import { readFileSync } from 'node:fs';
import crypto from 'node:crypto';
export function sample(input: string, el: { innerHTML: string }, secret: string): void {
  eval(input);
  exec(\`ls \${input}\`);
  el.innerHTML = input;
  const re = new RegExp(input);
  readFileSync(input);
  const slow = /^(a+)+$/;
  if (input === secret) console.log(re, slow);
  new Function(input);
  crypto.pseudoRandomBytes(4);
  document.write(input);
}
`;

describe('the security lint', { concurrency: false }, () => {
  let results: LintResult[];

  before(async () => {
    assert.ok(existsSync(ESLINT), `the lint is not installed at ${relative(ROOT, LINT_PACKAGE)} (npm run setup installs it)`);
    results = await eslint(['.']);
  });

  test('finds nothing in our code (each finding is fixed or justified where it is)', () => {
    const findings = results.flatMap((r) => r.messages.map((m) => `${relative(ROOT, r.filePath)}:${m.line}:${m.column} ${m.ruleId ?? '(parse)'}: ${m.message}`));
    assert.deepEqual(findings, [], `\n${findings.join('\n')}`);
  });

  test('sees every source file of ours', async () => {
    const { stdout } = await run('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts', '*.mts', '*.js', '*.mjs'], { cwd: ROOT, maxBuffer: 16 << 20 });
    const ours = stdout
      .split('\n')
      .filter(Boolean)
      .filter((f) => !/(^|\/)(node_modules|dist)\/|^tools\/|^test-artifacts\/|^server\/deploy\/build\//.test(f) && existsSync(join(ROOT, f)));
    const linted = new Set(results.map((r) => relative(ROOT, r.filePath)));
    assert.ok(ours.length > 100, `only ${ours.length} files found by git ls-files`);
    assert.deepEqual(
      ours.filter((f) => !linted.has(f)),
      [],
      'files the lint did not see',
    );
  });

  test('every disable comment gives its reason ("-- why")', () => {
    const bare: string[] = [];
    for (const r of results) {
      readFileSync(r.filePath, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const directive = /(?:\/\/|\/\*)\s*eslint-disable\S*(.*)$/.exec(line);
          if (directive && !/^\s+\S+.*\s--\s+\S/.test(directive[1]!)) bare.push(`${relative(ROOT, r.filePath)}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(bare, [], `\n${bare.join('\n')}`);
  });

  test('the rules are on: a sample of dangerous code is caught, rule by rule', async () => {
    const [sample] = await eslint(['--stdin', '--stdin-filename', 'server/src/lint-sample.ts'], SAMPLE);
    const found = new Set(sample!.messages.map((m) => m.ruleId));
    for (const rule of [
      'no-eval',
      'security/detect-eval-with-expression',
      'security/detect-child-process',
      'no-unsanitized/property',
      'no-unsanitized/method',
      'security/detect-non-literal-regexp',
      'security/detect-non-literal-fs-filename',
      'security/detect-unsafe-regex',
      'security/detect-possible-timing-attacks',
      'no-new-func',
      'security/detect-pseudoRandomBytes',
    ]) {
      assert.ok(found.has(rule), `${rule} did not fire on the sample: ${JSON.stringify(sample!.messages.map((m) => m.ruleId))}`);
    }
  });
});
