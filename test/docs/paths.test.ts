/**
 * Every path of the repository the documentation names (in `code`: README.md, docs/, the READMEs
 * beside the code) exists: a file or folder that moves takes its mentions with it (except
 * docs/architecture.md's "What moved where", whose "before" column is the old paths). A made-up
 * page proves the scan finds paths, and only paths.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TOP = ['bridge', 'main', 'renderer', 'server', 'test', 'bench', 'scripts', 'tools', 'assets', 'docs', '.ci'];
/** A repository path in a code span: a top folder, then path characters only (no placeholder, glob or option). */
const PATH = new RegExp(`^(?:${TOP.map((t) => t.replace('.', '\\.')).join('|')})/[\\w.@/-]*$`);
/** Made by a build, an install, a run or the operator, never committed: named in the docs as what a command or a person writes. */
const GENERATED = /^(server\/dist|dist|test-artifacts|server\/deploy\/build\/.+|server\/deploy\/\.env|.*\/node_modules\/.*)(\/|$)/;
/** A section that names the paths of before a move on purpose (docs/architecture.md). */
const HISTORY = /^## What moved where$/;

const PAGES = ['README.md', 'server/deploy/README.md', 'assets/README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** The page without its history sections (from a HISTORY heading to the next `## `). */
function current(text: string): string {
  let inHistory = false;
  return text
    .split('\n')
    .filter((line) => {
      if (/^## /.test(line)) inHistory = HISTORY.test(line);
      return !inHistory;
    })
    .join('\n');
}

/** The repository paths named in code spans of `text` (a trailing `:line` or `/` is left off). */
export function namedPaths(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/`([^`\n]+)`/g)) {
    for (const word of m[1]!.split(/[\s,()]+/)) {
      const path = word.replace(/:[\d-]+$/, '').replace(/[.;:]$/, '');
      if (PATH.test(path) && !GENERATED.test(path)) found.add(path.replace(/\/$/, ''));
    }
  }
  return [...found];
}

describe('paths named in the documentation', () => {
  test('a history section is left out', () => {
    assert.deepEqual(namedPaths(current('`bridge/a.ts`\n## What moved where\n`old/x.ts` `main/old.ts`\n## Next\n`main/b.ts`')).sort(), ['bridge/a.ts', 'main/b.ts']);
  });

  test('the scan finds paths in code spans, and only paths', () => {
    const page = 'See `server/src/config.ts`, `bridge/connection/` and `docs/tunnel.md:12`; `npm run server -- --port 8080`, `ctll-<hash>`, `server/*.ts`, `node scripts/run-tests.mjs tunnel`, `server/dist/web`.';
    assert.deepEqual(namedPaths(page).sort(), ['bridge/connection', 'docs/tunnel.md', 'scripts/run-tests.mjs', 'server/src/config.ts']);
  });

  test('every one exists', () => {
    const missing: string[] = [];
    let named = 0;
    for (const page of PAGES) {
      if (!existsSync(join(ROOT, page))) continue;
      for (const path of namedPaths(current(readFileSync(join(ROOT, page), 'utf8')))) {
        named++;
        if (!existsSync(join(ROOT, path))) missing.push(`${page}: ${path}`);
      }
    }
    assert.ok(named > 100, `only ${named} paths found in ${PAGES.join(', ')}: is the scan broken?`);
    assert.deepEqual(missing, [], 'named in the documentation but not in the repository (moved or gone)');
  });
});
