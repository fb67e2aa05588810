/**
 * Which environment variables the project's code reads, and which its documentation names: found
 * by reading the files, for the check that the two agree (environment.test.ts) and for the
 * deployment's own check (test/deploy/compose-config.test.ts).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SKIP = new Set(['node_modules', 'dist', '.git', 'test-artifacts', 'build']);

/** Files under `dirs` (relative to the root) whose names end with one of `endings`. */
export function filesUnder(dirs: readonly string[], endings: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (SKIP.has(name)) continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (endings.some((e) => name.endsWith(e))) out.push(relative(ROOT, path));
    }
  };
  for (const d of dirs) walk(join(ROOT, d));
  return out.sort();
}

const NAME = '[A-Z][A-Z0-9_]*[A-Z0-9]';
/** How TypeScript and JavaScript read a variable. */
const SCRIPT_READS = [
  // process.env['X'], env['X'], env?.['X'], anyEnv["X"]
  new RegExp(`\\b\\w*env\\??\\.?\\[\\s*['"\`](${NAME})['"\`]\\s*\\]`, 'gi'),
  // process.env.X, env.X, env?.X
  new RegExp(`\\b\\w*env\\??\\.(${NAME})\\b`, 'gi'),
  // a settings reader called with the name (server/src/settings.ts, the Docker API filter's
  // filter-config.ts): read.int('NAME', ...)
  new RegExp(`\\.(?:word|text|int|bool|choice|list|raw|number)\\(\\s*['"](${NAME})['"]`, 'g'),
];
/** const { A, B: b } = process.env */
const DESTRUCTURED = /\{([^{}]*)\}\s*=\s*(?:process\.)?env\b/g;
/** How shell scripts and Compose read a variable that comes from outside: ${X:-default}, ${X:?}, ${X-}, ${X:=}, ${X:+}. */
const SHELL_READS = new RegExp(`\\$\\{(${NAME}):?[-=?+]`, 'g');

/** Every variable read in `file`, by the patterns of its kind. */
export function readsIn(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const found = new Set<string>();
  const shell = /\.(sh|ya?ml)$/.test(file) || file.startsWith('.ci/');
  for (const re of shell ? [SHELL_READS] : SCRIPT_READS) for (const m of text.matchAll(re)) found.add(m[1]!);
  if (!shell) {
    for (const m of text.matchAll(DESTRUCTURED)) {
      for (const part of m[1]!.split(',')) {
        const name = part.split(':')[0]!.trim();
        if (new RegExp(`^${NAME}$`).test(name)) found.add(name);
      }
    }
  }
  // Lowercase matches of the case-insensitive `env` patterns are property names, not variables.
  return [...found].filter((n) => n === n.toUpperCase());
}

/** Variable → the files that read it. */
export function envReads(files: readonly string[]): Map<string, string[]> {
  const reads = new Map<string, string[]>();
  for (const file of files) for (const name of readsIn(file)) reads.set(name, [...(reads.get(name) ?? []), file]);
  return reads;
}

/** Names written in code spans (`LIKE_THIS`, `X=1 npm test`) of a Markdown file. */
export function namesInCodeSpans(file: string): Set<string> {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const names = new Set<string>();
  for (const span of text.matchAll(/`([^`\n]+)`/g)) for (const m of span[1]!.matchAll(new RegExp(`\\b(${NAME})\\b`, 'g'))) names.add(m[1]!);
  return names;
}

/**
 * The names in the first column of a Markdown file's tables (`| \`X\` / \`--flag\` | ...`), each
 * with its row: its configuration tables. With `section`, only the tables under the heading that
 * starts with it (up to the next heading).
 */
export function tableVariables(file: string, section?: string): Map<string, string> {
  const rows = new Map<string, string>();
  let inSection = section === undefined;
  for (const line of readFileSync(join(ROOT, file), 'utf8').split('\n')) {
    if (section !== undefined && /^#+ /.test(line)) inSection = line.replace(/^#+ /, '').startsWith(section);
    if (!inSection) continue;
    const cells = /^\|([^|]+)\|(.*)\|\s*$/.exec(line);
    if (!cells) continue;
    for (const m of cells[1]!.matchAll(new RegExp(`\`(${NAME})\``, 'g'))) rows.set(m[1]!, line);
  }
  return rows;
}

/** The settings of server/deploy/.env.example (`NAME=value` lines). */
export function envExampleKeys(file = 'server/deploy/.env.example'): Set<string> {
  return new Set([...readFileSync(join(ROOT, file), 'utf8').matchAll(new RegExp(`^(${NAME})=`, 'gm'))].map((m) => m[1]!));
}
