/**
 * Every install root of the repository (security-checks.ts: PACKAGES; the root's one tree holds
 * every npm workspace, and a test below holds every package.json to one or the other), offline: its installed tree
 * is whole (`npm ls`), no dependency declares itself deprecated, every install script is covered
 * by its package.json `allowScripts` (true: may run, false: must not), and no allowScripts entry
 * is stale. A fixture tree with a deprecated package, an unlisted postinstall and a binding.gyp
 * proves each check can fail.
 *
 * Limit, said plainly: npm does not copy the registry's deprecation notice into node_modules (npm
 * 7 and later leave a package's package.json as published), and the registry mirror this machine
 * reaches publishes no `deprecated` field at all; offline, only a package that declares
 * `deprecated` in its own package.json is caught here. `npm ci` against the public registry warns
 * about the others at install time.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { IN_CI, ROOT } from '../deploy/deploy-harness.js';
import { auditDependencies, npmHasInstallScripts } from './dependency-audit.js';
import { PACKAGES } from './security-checks.js';

const hasAllowScripts = await npmHasInstallScripts(ROOT);
if (!hasAllowScripts && IN_CI) test('npm has allowScripts (npm 11: `npm install-scripts`)', () => assert.fail('this npm has no `install-scripts` command'));
const skip = hasAllowScripts ? false : 'this npm has no `install-scripts` command (allowScripts, npm 11); CI=true makes this a failure';

describe('dependencies of every package: whole, not deprecated, install scripts allowed by allowScripts', { skip }, () => {
  for (const pkg of PACKAGES) {
    test(`${pkg === '.' ? 'the root package' : pkg}`, async (t) => {
      const audit = await auditDependencies(join(ROOT, pkg));
      t.diagnostic(`${audit.packages} installed packages`);
      assert.ok(audit.packages > 10, `npm ls saw only ${audit.packages} packages in ${pkg}: is it installed (npm run setup)?`);
      assert.deepEqual(audit.problems, [], 'npm ls problems (missing, invalid, extraneous)');
      assert.deepEqual(audit.deprecated, [], 'deprecated dependencies');
      assert.deepEqual(audit.unreviewedScripts, [], `install scripts not in ${pkg}/package.json allowScripts (add "name": true to allow, false to deny)`);
      assert.deepEqual(audit.staleAllowEntries, [], `allowScripts entries of ${pkg}/package.json that match nothing installed`);
    });
  }
});

test('every package.json of the repository is checked: an install root above or a workspace of the root', () => {
  const manifests = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', 'package.json', '*/package.json'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((f) => f && !/(^|\/)node_modules\//.test(f));
  const workspaces = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces?: string[] }).workspaces ?? [];
  const unchecked = manifests.map((f) => dirname(f)).filter((dir) => !PACKAGES.includes(dir) && !workspaces.includes(dir));
  assert.ok(manifests.length > PACKAGES.length, `git ls-files found only ${manifests.length} package.json files`);
  assert.deepEqual(unchecked, [], 'packages neither in security-checks.ts PACKAGES (own lockfile) nor in the root package.json workspaces');
});

describe('the dependency checks catch what they are for (a fixture tree)', { skip }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ctll-deps-'));
    const write = (path: string, json: unknown): void => {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), typeof json === 'string' ? json : JSON.stringify(json));
    };
    write('package.json', {
      name: 'fixture',
      version: '1.0.0',
      private: true,
      dependencies: { evil: '1.0.0', good: '1.0.0', native: '1.0.0', missing: '1.0.0' },
      allowScripts: { good: true, 'long-gone': true },
    });
    write('node_modules/evil/package.json', { name: 'evil', version: '1.0.0', scripts: { postinstall: 'node steal.js' }, deprecated: 'use good instead' });
    write('node_modules/good/package.json', { name: 'good', version: '1.0.0', scripts: { install: 'node build.js' } });
    write('node_modules/native/package.json', { name: 'native', version: '1.0.0' });
    write('node_modules/native/binding.gyp', '{}');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a deprecated package, unlisted install scripts (explicit and binding.gyp), a missing package and a stale entry are all reported', async () => {
    const audit = await auditDependencies(dir);
    assert.deepEqual(audit.deprecated, ['evil@1.0.0: use good instead']);
    assert.deepEqual(audit.unreviewedScripts.sort(), ['evil@1.0.0 (postinstall: node steal.js)', 'native@1.0.0 (binding.gyp: node-gyp rebuild)']);
    assert.ok(audit.problems.some((p) => p.includes('missing: missing@1.0.0')), JSON.stringify(audit.problems));
    assert.deepEqual(audit.staleAllowEntries, ['long-gone (not-installed)']);
  });
});
