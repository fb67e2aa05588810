/**
 * The whole product on one machine, without a desktop: the cloud server with its embedded
 * sign-in issuer (Docker runtime when a Docker engine answers, the proxy image built on first use;
 * else in-process), and the bridge
 * signed in against that issuer without a browser, connected to your Ollama. Prints the endpoint
 * and a bearer token for any Ollama client; with --json, exactly one JSON line on stdout
 * (`{"endpoint","token"}`) and every log on stderr. Ctrl-C or SIGTERM stops everything and
 * leaves no container or network behind.
 *
 *   npm run start:headless -- [--port N] [--ollama-url URL] [--runtime docker|process] [--allow pull,...] [--user NAME] [--name COMPUTER] [--json]
 */
import { Bridge } from '@cloudtolocalllm/bridge';
import { onShutdownSignal } from '@cloudtolocalllm/bridge/shutdown-signals';
import { KeyRing } from '@cloudtolocalllm/bridge/keys/key-ring';
import { KeyStore } from '@cloudtolocalllm/bridge/keys/key-store';
import { startCloudServer, type CloudServer } from '@cloudtolocalllm/server/cloud-server';
import { createLogger } from '@cloudtolocalllm/server/log';
import { buildWeb } from './build-web.js';
import { readHeadlessConfig, type HeadlessConfig } from './headless-config.js';
import { headlessSignIn, refreshHeadless } from './headless-login.js';

function fail(message: string, code = 2): never {
  process.stderr.write(`start:headless: ${message}\n`);
  process.exit(code);
}

let options: HeadlessConfig;
try {
  options = readHeadlessConfig();
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
const config = options.server;
const log = createLogger({ component: 'headless' }, config.logLevel);

// The web client (served at /app/) is built from source on each start: it takes about a second.
await buildWeb().catch((e: Error) => log.warn('the web client could not be built; the API works without it', { error: e.message }));

let server: CloudServer;
try {
  // A printed token has to last a working day; the bridge itself refreshes before expiry.
  server = await startCloudServer(config, { log, accessTokenTtlSec: 12 * 3600 });
} catch (e) {
  fail((e as Error).message, 1);
}
const issuer = server.embeddedIssuer!;

async function shutdown(): Promise<void> {
  await bridge?.stop().catch(() => undefined);
  keys?.close();
  await server.close().catch((e: Error) => log.error('stopping the server failed', { error: e.message }));
}
async function stop(code: number): Promise<never> {
  await shutdown();
  process.exit(code);
}
onShutdownSignal((signal) => {
  log.info('stopping', { signal });
  return shutdown();
});

let tokens;
try {
  tokens = await headlessSignIn({ issuer: issuer.issuer, clientId: issuer.desktopClientId, audience: server.audience, username: options.user });
} catch (e) {
  log.error('headless sign-in failed', { error: (e as Error).message });
  await stop(1);
}

// The bridge asks for a token before each connection: refresh it when it is close to expiry.
let current = tokens!;
async function freshToken(): Promise<string> {
  if (current.expiresAt - Date.now() < 60_000 && current.refreshToken) {
    current = await refreshHeadless({ issuer: issuer.issuer, clientId: issuer.desktopClientId }, current);
  }
  return current.accessToken;
}

// Client keys (npm run keys): made for the user signed in here, served to the proxy by the bridge.
const store = new KeyStore(options.configDir);
const endpoint = `${server.url}/ollama`;
let keys: KeyRing | undefined;
try {
  if (!tokens!.subject) throw new Error('the sign-in gave no user id (sub)');
  store.recordSubject(tokens!.subject, endpoint);
  keys = new KeyRing(store);
  keys.on('problem', (message) => log.warn('client keys', { problem: message }));
  keys.start();
} catch (e) {
  log.warn('client keys are off: the configuration directory cannot be used', { dir: store.dir, error: (e as Error).message });
}

let bridge: Bridge | undefined;
try {
  bridge = new Bridge({
    ...(keys ? { keys } : {}),
    proxyUrl: `${server.url.replace(/^http/, 'ws')}/ws/bridge`,
    getToken: freshToken,
    ollamaUrl: options.ollamaUrl,
    policy: { allowManagement: options.allowManagement },
    name: options.name,
  });
} catch (e) {
  log.error((e as Error).message);
  await stop(2);
}

let announced = false;
bridge!.on('status', (s) => {
  log.info(`bridge ${s.state}`, { reason: s.reason, code: s.code });
  if (s.state !== 'connected' || announced) return;
  announced = true;
  if (options.json) {
    process.stdout.write(JSON.stringify({ endpoint, token: current.accessToken }) + '\n');
  } else {
    const minutes = Math.round((current.expiresAt - Date.now()) / 60_000);
    process.stdout.write(
      `\nCloudToLocalLLM is relaying ${options.ollamaUrl} (proxies: ${server.runtime.kind})\n` +
        `  endpoint: ${endpoint}\n  token:    ${current.accessToken}\n  (the token is valid for ${minutes} minutes)\n` +
        `  web chat: ${server.url}/app/ (sign in as ${options.user})\n` +
        `  keys:     npm run keys -- create --name NAME (${store.dir})\n\n` +
        `  try: curl -H "Authorization: Bearer ${current.accessToken}" ${endpoint}/api/tags\n\n`,
    );
  }
});
bridge!.on('ollama', (o) => (o.reachable ? log.info('ollama reachable', { detail: o.detail }) : log.warn('ollama unreachable', { detail: o.detail })));
bridge!.start();
