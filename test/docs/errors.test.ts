/**
 * docs/cloud-server.md's Errors table and the server's error codes agree: every code the server
 * can answer with (ERROR_STATUS: the HTTP API contract's codes plus the tunnel's) has a row, with
 * the status written in that one place, and the table names no code the server does not have.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_STATUS } from '@cloudtolocalllm/server/errors';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** code → the status its row gives, from the table under `## Errors` (first cell: codes, second: status). */
export function documentedCodes(page: string): Map<string, number[]> {
  const codes = new Map<string, number[]>();
  let inSection = false;
  for (const line of page.split('\n')) {
    if (/^## /.test(line)) inSection = line === '## Errors';
    const row = inSection && /^\|([^|]+)\|\s*(\d{3})\s*\|/.exec(line);
    if (!row) continue;
    for (const m of row[1]!.matchAll(/`([a-z][a-z-]*)`/g)) codes.set(m[1]!, [...(codes.get(m[1]!) ?? []), Number(row[2])]);
  }
  return codes;
}

describe("the error codes in docs/cloud-server.md", () => {
  test('the scan reads codes and statuses from the Errors section only', () => {
    const page = '## Configuration\n| `x-code` | 500 | no |\n## Errors\n| code | status | when |\n|---|---|---|\n| `a-code`, `b-code` | 409 | yes |\n## Audit log\n| `c-code` | 400 | no |';
    assert.deepEqual([...documentedCodes(page)], [['a-code', [409]], ['b-code', [409]]]);
  });

  test('every code has one row, with its status', () => {
    const documented = documentedCodes(readFileSync(join(ROOT, 'docs/cloud-server.md'), 'utf8'));
    const problems: string[] = [];
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      const rows = documented.get(code);
      if (!rows) problems.push(`${code} (${status}): no row`);
      else if (rows.length !== 1 || rows[0] !== status) problems.push(`${code}: documented as ${rows.join(', ')}, answered with ${status}`);
    }
    for (const code of documented.keys()) if (!(code in ERROR_STATUS)) problems.push(`${code}: documented, but not a code of the server`);
    assert.deepEqual(problems, []);
  });
});
