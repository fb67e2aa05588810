#!/usr/bin/env node
// Runs every *.test.ts in the project with Node's own test runner (through tsx, so no build step).
// Node 20's runner cannot glob .ts files itself, hence this file list.
//
// Two lanes. Node's runner takes one file at a time on a 2-core machine (its concurrency is the
// cores minus one), so a file that mostly waits holds the whole suite up for as long as it waits.
// The files in WAITING below spend minutes idle on purpose (a stream with 76 s of silence through
// nginx); they run in a second runner beside the first, and their report is printed, whole and
// not interleaved, when they finish. A file belongs there only if it is idle most of its time and
// takes nothing the others use (its ports are free ports, its files temporary, no Docker).
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const skip = new Set(['node_modules', 'dist', '.git', 'test-artifacts', 'build']);
const roots = ['bridge', 'main', 'renderer', 'server', 'test', 'scripts'];
const WAITING = new Set(['test/deploy/nginx-streaming.test.ts']);

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

const children = new Set();
/** One runner over `list`; resolves to its exit code (a signal counts as a failure). */
function runner(list, capture) {
  const args = ['--import', 'tsx', '--test', '--test-reporter=spec', ...list];
  const child = spawn(process.execPath, args, { cwd: root, stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
  children.add(child);
  const output = [];
  if (capture) {
    child.stdout.on('data', (chunk) => output.push(chunk));
    child.stderr.on('data', (chunk) => output.push(chunk));
  }
  return new Promise((resolve) => {
    child.on('error', (error) => { output.push(Buffer.from(`cannot start the test runner: ${error.message}\n`)); resolve({ code: 1, output }); });
    child.on('exit', (code, signal) => { children.delete(child); resolve({ code: code ?? (signal ? 1 : 0), output }); });
  });
}
// A stopped run stops both runners, so no test process outlives it.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => { for (const c of children) c.kill(signal); process.exit(130); });
}

const waiting = selected.filter((f) => WAITING.has(f));
const busy = selected.filter((f) => !WAITING.has(f));
const side = waiting.length && busy.length ? runner(waiting, true) : undefined;
const main = await runner(side ? busy : selected, false);
let code = main.code;
if (side) {
  const started = Date.now();
  const done = await side;
  process.stdout.write(`\n# beside the other files (${waiting.join(', ')}), waited ${Math.round((Date.now() - started) / 1000)} s after them:\n`);
  process.stdout.write(Buffer.concat(done.output));
  if (done.code !== 0) console.error(`\n# ${waiting.join(', ')}: the runner exited ${done.code}`);
  code ||= done.code;
}
process.exit(code);
