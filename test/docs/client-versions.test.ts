/**
 * The client versions the README and docs/clients.md say were tested are the versions the tests
 * run (the installed packages): an upgrade of a client takes its line in both tables with it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The clients test/keys runs, by package: the row of each table that names it. */
const CLIENTS: Array<{ pkg: string; row: { readme: RegExp; clients: RegExp } }> = [
  { pkg: 'ollama', row: { readme: /^\| `ollama` JavaScript .*$/m, clients: /^\| `ollama` \(JavaScript\) .*$/m } },
  { pkg: 'openai', row: { readme: /^\| `openai` JavaScript .*$/m, clients: /^\| `openai` \(JavaScript\) .*$/m } },
  { pkg: '@langchain/ollama', row: { readme: /^\| LangChain JS .*$/m, clients: /^\| LangChain JS .*$/m } },
  { pkg: '@ai-sdk/openai-compatible', row: { readme: /^\| Vercel AI SDK .*$/m, clients: /^\| Vercel AI SDK .*$/m } },
];

/** The version npm installed (workspaces hoist every client to the root; some do not export package.json). */
function installed(pkg: string): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
}

describe('client versions in the docs', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const clients = readFileSync(join(ROOT, 'docs/clients.md'), 'utf8');
  for (const { pkg, row } of CLIENTS) {
    test(`${pkg}: the version installed is the one both tables name`, () => {
      const version = installed(pkg);
      for (const [page, text, pattern] of [['README.md', readme, row.readme], ['docs/clients.md', clients, row.clients]] as const) {
        const line = pattern.exec(text)?.[0];
        assert.ok(line, `${page} has a row for ${pkg}`);
        assert.ok(line.includes(version), `${page} says which ${pkg} was tested; installed is ${version}: ${line}`);
      }
    });
  }
});
