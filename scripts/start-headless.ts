/**
 * The whole product on one machine, without a desktop: a streaming proxy on loopback and the
 * bridge connected to it and to your Ollama. Prints the endpoint and bearer token that any
 * Ollama client can use; with --json, one JSON line on stdout (logs go to stderr).
 *
 *   npm run start:headless -- [--port N] [--ollama-url URL] [--allow pull,...] [--json]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Bridge } from '../bridge/bridge.js';
import { BRIDGE_PATH } from '../bridge/connection/protocol.js';
import { DEFAULT_OLLAMA_URL } from '../bridge/forward/ollama-target.js';
import { parseManagementList } from '../bridge/ingress/policy.js';
import { createLogger } from '../server/src/log.js';
import { StaticTokenAuthenticator } from '../server/src/proxy/auth.js';
import { StreamingProxy } from '../server/src/proxy/streaming-proxy.js';

function fail(message: string): never {
  process.stderr.write(`start:headless: ${message}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'ollama-url': { type: 'string', default: DEFAULT_OLLAMA_URL },
      allow: { type: 'string', default: '' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (e) {
  fail((e as Error).message);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port "${values.port}" is not a port number (0 picks a free one)`);

const log = createLogger({ component: 'headless' });
const token = randomBytes(32).toString('base64url');
const proxy = new StreamingProxy({ authenticator: new StaticTokenAuthenticator('local-user', token), log });
const url = await proxy.listen(port, '127.0.0.1').catch((e: Error) => fail(`cannot listen on 127.0.0.1:${port}: ${e.message}`));

let bridge: Bridge;
try {
  bridge = new Bridge({
    proxyUrl: url + BRIDGE_PATH,
    getToken: () => token,
    ollamaUrl: values['ollama-url'],
    policy: { allowManagement: parseManagementList(values.allow) },
  });
} catch (e) {
  await proxy.close();
  fail((e as Error).message);
}

let announced = false;
bridge.on('status', (s) => {
  log.info(`bridge ${s.state}`, { reason: s.reason, code: s.code });
  if (s.state !== 'connected' || announced) return;
  announced = true;
  if (values.json) {
    process.stdout.write(JSON.stringify({ endpoint: url, token }) + '\n');
  } else {
    process.stdout.write(
      `\nCloudToLocalLLM is relaying ${values['ollama-url']}\n` +
        `  endpoint: ${url}\n  token:    ${token}\n\n` +
        `  try: curl -H "Authorization: Bearer ${token}" ${url}/api/tags\n` +
        `  or:  OLLAMA_HOST=${url} with any client that can send the header\n\n`,
    );
  }
});
bridge.on('ollama', (o) => (o.reachable ? log.info('ollama reachable', { detail: o.detail }) : log.warn('ollama unreachable', { detail: o.detail })));
bridge.start();

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    void bridge.stop().then(() => proxy.close()).then(() => process.exit(0));
  });
}
