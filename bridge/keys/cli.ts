/**
 * Client keys from a terminal (issue 9), on the configuration directory the bridge uses:
 *
 *   npm run keys -- create --name NAME [--models a,b] [--allow pull,...] [--machines a,b] [--expires 30d] [--json]
 *   npm run keys -- list [--json]
 *   npm run keys -- revoke NAME_OR_ID
 *
 * The key is printed once, at creation; only its verifier is kept. A running bridge picks up the
 * change by itself within 2 s.
 */
import { parseArgs } from 'node:util';
import { MANAGEMENT_ENDPOINTS } from '../ingress/ollama-routes.js';
import { parseManagementList } from '../ingress/policy.js';
import { configDir, CONFIG_DIR_VARIABLE } from './config-dir.js';
import { parseExpiry, parseMachineList, parseModelList } from './key-input.js';
import { KeyStore, KeyStoreError, type KeyDefinition, type KeyUsage } from './key-store.js';

const USAGE = `usage: npm run keys -- <command> [options]

  create --name NAME [--models a,b] [--allow LIST] [--machines a,b] [--expires 30d] [--json]
                      make a key; it is printed once (with --json: one JSON line)
      --models a,b    the models the key may use (default: all)
      --allow LIST    model management the key may use: ${MANAGEMENT_ENDPOINTS.join(',')} or all
                      (your computer's own setting must allow it too; default none)
      --machines a,b  the computers (their names on your endpoint) the key may use
                      (default: all of yours that are connected)
      --expires WHEN  30d, 12h, 90m, or a date such as 2027-01-31 (default: never)
  list [--json]       names, ids, scopes, created, last used, usage
  revoke NAME_OR_ID   the key stops working within 2 s on a running bridge

The keys live in ${CONFIG_DIR_VARIABLE} when set, else the desktop app's data directory.
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`keys: ${message}\n${code === 2 ? `\n${USAGE}` : ''}`);
  process.exit(code);
}

/** The option's value as read by key-input.ts, with its error naming the option. */
function option<T>(flag: string, read: () => T): T {
  try {
    return read();
  } catch (e) {
    throw new Error(`${flag}: ${(e as Error).message}`);
  }
}

const when = (ms: number | undefined): string => (ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'));

function listing(k: KeyDefinition, u: KeyUsage | undefined, now: number): Record<string, unknown> {
  return {
    id: k.id,
    name: k.name,
    models: k.models ?? null,
    allow: k.allow,
    machines: k.machines ?? null,
    createdAt: k.createdAt,
    expiresAt: k.expiresAt ?? null,
    expired: k.expiresAt !== undefined && k.expiresAt <= now,
    lastUsedAt: u?.lastUsedAt ?? null,
    requests: u?.requests ?? 0,
    tokensIn: u?.tokensIn ?? 0,
    tokensOut: u?.tokensOut ?? 0,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

const [command, ...rest] = process.argv.slice(2);
if (!command || command === '--help' || command === 'help') {
  process.stdout.write(USAGE);
  process.exit(command ? 0 : 2);
}
const store = new KeyStore(configDir(process.env));

let parsed;
try {
  parsed = parseArgs({
    args: rest,
    allowPositionals: command === 'revoke',
    strict: true,
    options: {
      name: { type: 'string' },
      models: { type: 'string' },
      allow: { type: 'string' },
      machines: { type: 'string' },
      expires: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
} catch (e) {
  fail((e as Error).message);
}
const { values, positionals } = parsed;

try {
  if (command === 'create') {
    if (!values.name) fail('create needs --name NAME');
    let spec;
    try {
      spec = {
        name: values.name,
        ...(values.models !== undefined ? { models: option('--models', () => parseModelList(values.models!)) } : {}),
        allow: [...parseManagementList(values.allow ?? '')],
        ...(values.machines !== undefined ? { machines: option('--machines', () => parseMachineList(values.machines!)) } : {}),
        ...(values.expires !== undefined ? { expiresAt: option('--expires', () => parseExpiry(values.expires!)) } : {}),
      };
    } catch (e) {
      fail((e as Error).message);
    }
    const { key, definition } = store.create(spec);
    const endpoint = store.account()?.endpoint;
    if (values.json) {
      process.stdout.write(JSON.stringify({ ...listing(definition, undefined, Date.now()), key, ...(endpoint ? { endpoint } : {}) }) + '\n');
    } else {
      process.stdout.write(
        `Created key "${definition.name}" (id ${definition.id}). Copy it now: it is shown only this once.\n\n  ${key}\n\n` +
          (endpoint
            ? `  Ollama base URL:  ${endpoint}\n  OpenAI base URL:  ${endpoint}/v1\n  try: curl -H "Authorization: Bearer ${key}" ${endpoint}/api/tags\n`
            : '  Use it as "Authorization: Bearer <key>" on your endpoint (…/ollama for Ollama clients, …/ollama/v1 for OpenAI clients).\n'),
      );
    }
  } else if (command === 'list') {
    const now = Date.now();
    const usage = store.usage();
    const keys = store.keys().map((k) => listing(k, usage[k.id], now));
    if (values.json) {
      process.stdout.write(JSON.stringify(keys) + '\n');
    } else if (keys.length === 0) {
      process.stdout.write('no keys yet: npm run keys -- create --name NAME\n');
    } else {
      const rows = [['NAME', 'ID', 'MODELS', 'ALLOW', 'MACHINES', 'CREATED', 'EXPIRES', 'LAST USED', 'REQUESTS', 'TOKENS IN', 'TOKENS OUT']];
      for (const k of keys) {
        rows.push([
          String(k['name']),
          String(k['id']),
          Array.isArray(k['models']) ? k['models'].join(',') : 'all',
          (k['allow'] as string[]).join(',') || '-',
          Array.isArray(k['machines']) ? k['machines'].join(',') : 'all',
          when(k['createdAt'] as number),
          k['expired'] ? `expired ${when(k['expiresAt'] as number)}` : when((k['expiresAt'] as number | null) ?? undefined),
          when((k['lastUsedAt'] as number | null) ?? undefined),
          String(k['requests']),
          String(k['tokensIn']),
          String(k['tokensOut']),
        ]);
      }
      process.stdout.write(table(rows));
    }
  } else if (command === 'revoke') {
    const target = positionals[0];
    if (!target || positionals.length > 1) fail('revoke needs exactly one NAME_OR_ID');
    const gone = store.revoke(target);
    if (!gone) fail(`no key is named or has the id "${target}" (npm run keys -- list shows them)`, 1);
    process.stdout.write(`revoked key "${gone.name}" (id ${gone.id})\n`);
  } else {
    fail(`unknown command "${command}"; use create, list or revoke`);
  }
} catch (e) {
  if (e instanceof KeyStoreError) fail(e.message, 1);
  throw e;
}
