/**
 * The bridge without a desktop: for a Linux box that runs Ollama headless.
 *
 *   CLOUDTOLOCALLLM_TOKEN=... tsx bridge/cli.ts --proxy-url wss://cloud.example/ws/bridge
 *
 * The token comes from the environment or a file, never from the command line (other users
 * of the machine can read every process's arguments).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Bridge } from './bridge.js';
import { DEFAULT_OLLAMA_URL } from './forward/ollama-target.js';
import { MANAGEMENT_ENDPOINTS } from './ingress/ollama-routes.js';
import { parseManagementList } from './ingress/policy.js';
import { onShutdownSignal } from './shutdown-signals.js';
import { configDir, CONFIG_DIR_VARIABLE } from './keys/config-dir.js';
import { KeyRing } from './keys/key-ring.js';
import { KeyStore } from './keys/key-store.js';

const USAGE = `usage: cloudtolocalllm-bridge --proxy-url URL [options]

  --proxy-url URL     the proxy's bridge endpoint (ws://, wss://, http:// or https://)
  --ollama-url URL    your Ollama (default ${DEFAULT_OLLAMA_URL})
  --allow LIST        model management the cloud may use: ${MANAGEMENT_ENDPOINTS.join(',')} or all (default none)
  --token-file FILE   read the bearer token from FILE (else CLOUDTOLOCALLLM_TOKEN)
  --ca-file FILE      also trust the CA certificate(s) in FILE (PEM) for wss:// (self-signed cloud)
  --json              status events as JSON lines on stdout

Client keys (npm run keys) are read from ${CONFIG_DIR_VARIABLE}, else the desktop app's data directory.
`;

function fail(message: string): never {
  process.stderr.write(`bridge: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      'proxy-url': { type: 'string' },
      'ollama-url': { type: 'string', default: DEFAULT_OLLAMA_URL },
      allow: { type: 'string', default: '' },
      'token-file': { type: 'string' },
      'ca-file': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
} catch (e) {
  fail((e as Error).message);
}
const { values } = parsed;
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (!values['proxy-url']) fail('--proxy-url is required');

function readToken(): string {
  const file = values['token-file'];
  if (file) {
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- the user's own --token-file argument
      return readFileSync(file, 'utf8').trim();
    } catch (e) {
      fail(`cannot read --token-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const env = process.env['CLOUDTOLOCALLLM_TOKEN'];
  if (!env) fail('no token: set CLOUDTOLOCALLLM_TOKEN or pass --token-file');
  return env.trim();
}

let ca: string | undefined;
if (values['ca-file']) {
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the user's own --ca-file argument
    ca = readFileSync(values['ca-file'], 'utf8');
  } catch (e) {
    fail(`cannot read --ca-file ${values['ca-file']}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

// The client keys made on this computer: their verifiers go to the proxy, their scopes apply here.
const keys = new KeyRing(new KeyStore(configDir(process.env)));
keys.on('problem', (message) => process.stderr.write(`${new Date().toISOString()} client keys: ${message}\n`));
try {
  keys.start();
} catch (e) {
  process.stderr.write(`${new Date().toISOString()} client keys are off: ${(e as Error).message}\n`);
}

let bridge: Bridge;
try {
  bridge = new Bridge({
    keys,
    ...(ca !== undefined ? { ca } : {}),
    proxyUrl: values['proxy-url'],
    ollamaUrl: values['ollama-url'],
    policy: { allowManagement: parseManagementList(values.allow) },
    getToken: readToken,
  });
} catch (e) {
  fail((e as Error).message);
}

const print = (line: string, event: object): void => {
  if (values.json) process.stdout.write(JSON.stringify(event) + '\n');
  else process.stderr.write(`${new Date().toISOString()} ${line}\n`);
};
bridge.on('status', (s) => {
  const retry = s.retryInMs !== undefined ? ` (retrying in ${(s.retryInMs / 1000).toFixed(1)} s)` : '';
  print(`${s.state}: ${s.reason ?? ''}${retry}`, { event: 'status', ...s });
  // A fatal refusal (update required, another device took over) is not retried: exit with it.
  if ((s.state === 'error' || s.state === 'disconnected') && s.retryInMs === undefined) {
    process.exitCode = s.code === 'update-required' ? 3 : 4;
    void bridge.stop().then(() => process.exit(process.exitCode ?? 1));
  }
});
bridge.on('ollama', (o) => print(`ollama ${o.reachable ? 'reachable' : 'unreachable'}: ${o.detail ?? ''}`, { event: 'ollama', ...o }));
bridge.start();

onShutdownSignal(async () => {
  await bridge.stop();
  keys.close();
});
