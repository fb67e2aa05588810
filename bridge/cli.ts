/**
 * The bridge without a desktop: for a Linux box that runs Ollama headless.
 *
 *   CLOUDTOLOCALLLM_TOKEN=... tsx bridge/cli.ts --proxy-url wss://cloud.example/ws/bridge
 *
 * Its configuration (flags, token, CA file) is read by cli-config.ts; this file wires it up.
 */
import { Bridge } from './bridge.js';
import { CliConfigError, readCliConfig, USAGE, type BridgeCliConfig } from './cli-config.js';
import { onShutdownSignal } from './shutdown-signals.js';
import { KeyRing } from './keys/key-ring.js';
import { KeyStore } from './keys/key-store.js';

function fail(message: string): never {
  process.stderr.write(`bridge: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let config: BridgeCliConfig | 'help';
try {
  config = readCliConfig(process.argv.slice(2), process.env);
} catch (e) {
  fail((e as Error).message);
}
if (config === 'help') {
  process.stdout.write(USAGE);
  process.exit(0);
}
const values = config;

function readToken(): string {
  try {
    return values.readToken();
  } catch (e) {
    fail(e instanceof CliConfigError ? e.message : String(e));
  }
}

// The client keys made on this computer: their verifiers go to the proxy, their scopes apply here.
const keys = new KeyRing(new KeyStore(values.configDir));
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
    ...(values.ca !== undefined ? { ca: values.ca } : {}),
    ...(values.transport !== undefined ? { transport: values.transport } : {}),
    proxyUrl: values.proxyUrl,
    ollamaUrl: values.ollamaUrl,
    policy: { allowManagement: new Set(values.allowManagement) },
    getToken: readToken,
    name: values.name,
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
  const over = s.state === 'connected' && s.transport ? ` (${s.transport === 'h2' ? 'HTTP/2 on the socket' : 'HTTP/2 over WebSocket'})` : '';
  print(`${s.state}: ${s.reason ?? ''}${over}${retry}`, { event: 'status', ...s });
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
