/**
 * The documentation cannot drift from the code's environment: every variable the code reads
 * (TypeScript and JavaScript as process.env['X'], env['X'], env.X, a settings reader's
 * read.int('X', ...); shell scripts and Compose as ${X:-...}) is named in docs/, the README or
 * server/deploy/.env.example; every variable those list in a table (or .env.example sets) is
 * read somewhere; the cloud server's settings each have a row in docs/cloud-server.md's
 * configuration table, and each is checked at start.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '@cloudtolocalllm/server/config';
import { envExampleKeys, envReads, filesUnder, namesInCodeSpans, tableVariables } from './environment.js';

/** Read, but set by others: not ours to document. */
const EXTERNAL: Record<string, string> = {
  PATH: 'the system search path (tests look for tools on it)',
  TMPDIR: 'the system temporary directory',
  XDG_CONFIG_HOME: 'the XDG base directory specification (where autostart entries go)',
  APPIMAGE: 'set by the AppImage runtime to the file being run (the autostart entry points at it)',
  NODE_TEST_CONTEXT: "set by Node's test runner in the processes it runs (a test tells whether it runs under it)",
  APPDATA: "Windows' per-user application data folder (the Electron double's getPath on win32)",
  NODE_ENV: "Node's convention; the desktop app logs debug lines to the console with development",
  NO_COLOR: 'the no-color.org convention, honoured by the deploy scripts',
  RENEWED_LINEAGE: "set by certbot for a deploy hook: the renewed certificate's folder",
  NEEDLES: 'passed by test/deploy/stack.test.ts to the search script it runs inside a container, not a setting',
  DRY_RUN: 'passed from the deploy scripts to scripts/deploy/lib.sh (set by --dry-run), not a setting',
  CTLL_TAG: 'set by each deploy script for scripts/deploy/lib.sh (the name its messages start with), not a setting',
};

const CODE = filesUnder(['bridge', 'main', 'renderer', 'server', 'scripts', 'bench', 'test', '.ci'], ['.ts', '.mjs', '.js', '.sh', '.yml', '.ci/run']).filter(
  // This check's own sources name variables in their comments and patterns.
  (f) => !f.startsWith('test/docs/'),
);
const DOCS = [...filesUnder(['docs'], ['.md']), 'README.md', 'server/deploy/README.md'];
const reads = envReads(CODE);

describe('environment variables and their documentation', () => {
  test('the scan finds what it must (the server, the bridge CLI, the proxy, scripts, Compose)', () => {
    for (const name of ['PORT', 'CTLL_KEEP_PROXIES_ON_EXIT', 'LOG_LEVEL', 'CTLL_FIREWALL', 'CLOUDTOLOCALLLM_TOKEN', 'PROXY_TOKEN', 'NODE_BIN', 'HSTS_MAX_AGE', 'CTLL_API_MEMORY']) {
      assert.ok(reads.has(name), `${name} is read somewhere, but the scan did not find it`);
    }
  });

  test('every variable the code reads is documented in docs/, the README or server/deploy/.env.example', () => {
    const documented = new Set(envExampleKeys());
    for (const doc of DOCS) for (const name of namesInCodeSpans(doc)) documented.add(name);
    const missing = [...reads]
      .filter(([name]) => !documented.has(name) && !(name in EXTERNAL))
      .map(([name, files]) => `${name} (read in ${files.join(', ')})`);
    assert.deepEqual(missing, [], 'document these (the server\'s in docs/cloud-server.md\'s configuration table, with the default)');
  });

  test('every variable a configuration table lists, or .env.example sets, is read somewhere', () => {
    const listed = new Map<string, string>();
    for (const doc of DOCS) for (const name of tableVariables(doc).keys()) listed.set(name, doc);
    for (const name of envExampleKeys()) listed.set(name, 'server/deploy/.env.example');
    const unread = [...listed].filter(([name]) => !reads.has(name)).map(([name, doc]) => `${name} (in ${doc})`);
    assert.deepEqual(unread, [], 'nothing reads these any more: remove them from the documentation, or read them');
  });

  test("every setting the cloud server reads has a row with its default in docs/cloud-server.md's configuration table", () => {
    const rows = tableVariables('docs/cloud-server.md');
    const server = [...envReads(filesUnder(['server/src'], ['.ts']).filter((f) => !f.endsWith('.test.ts'))).keys()];
    assert.ok(server.length > 30, `only ${server.length} settings found in server/src`);
    const problems: string[] = [];
    for (const name of server.sort()) {
      const row = rows.get(name);
      if (!row) problems.push(`${name}: no row`);
      else if (!(row.split('|')[2] ?? '').trim()) problems.push(`${name}: no default in its row`);
    }
    assert.deepEqual(problems, []);
  });
});

describe('the cloud server checks every setting of its configuration table at start', () => {
  const table = [...tableVariables('docs/cloud-server.md', 'Configuration').keys()];
  /** Accepted whatever it holds, and why. */
  const FREE: Record<string, string> = {
    CTLL_WEB_ROOT: 'a path; a folder that does not exist only means no web client, which the server logs at start',
  };
  const AUTH0 = { AUTH0_DOMAIN: 'tenant.example.auth0.com', AUTH0_AUDIENCE: 'https://api.example.com', AUTH0_DESKTOP_CLIENT_ID: 'abc123' };
  test('the table lists the settings (the scan of it works)', () => {
    for (const name of ['PORT', 'HOST', 'CTLL_RUNTIME', 'AUTH0_DOMAIN', 'LOG_LEVEL', 'CTLL_KEEP_PROXIES_ON_EXIT']) assert.ok(table.includes(name), name);
  });

  for (const name of table) {
    test(`${name}: a nonsense value is refused with the variable named`, { skip: FREE[name] ? `accepts anything: ${FREE[name]}` : false }, () => {
      // AUTH0_* settings apply only with Auth0 configured.
      const env = { ...(name.startsWith('AUTH0_') ? AUTH0 : {}), [name]: 'not valid' };
      assert.doesNotThrow(() => loadConfig({ ...env, [name]: (AUTH0 as Record<string, string>)[name] ?? '' }, []), 'the settings around it are valid');
      assert.throws(
        () => loadConfig(env, []),
        (e: unknown) => e instanceof ConfigError && e.problems.length === 1 && e.problems[0]!.includes(name),
      );
    });
  }
});
