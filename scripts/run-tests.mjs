#!/usr/bin/env node
// Runs every *.test.ts in the project with Node's own test runner (through tsx, so no build step).
// Node 20's runner cannot glob .ts files itself, hence this file list.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const skip = new Set(['node_modules', 'dist', '.git', 'test-artifacts', 'build']);
const roots = ['bridge', 'main', 'renderer', 'server', 'test', 'scripts'];

function walk(dir, out) {
  let entries;
  try { entries = readdirSync(dir); } catch { return; }
  for (const name of entries) {
    if (skip.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
}

const filter = process.argv.slice(2);
const files = [];
for (const r of roots) walk(join(root, r), files);
const selected = filter.length ? files.filter((f) => filter.some((p) => f.includes(p))) : files;
if (selected.length === 0) {
  console.error(`no test files match ${filter.join(' ')}`);
  process.exit(1);
}
const args = ['--import', 'tsx', '--test', '--test-reporter=spec', ...selected];
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
