/**
 * The cloud server of the deployed path in a process of its own, started as `npm run
 * start:headless` starts it (scripts/start-headless.ts: the same configuration reader, Docker
 * runtime with the proxy image built offline if it is missing or stale, the embedded issuer, a
 * 12-hour access token) but without the in-process bridge: the benchmark runs the bridge as the
 * separate process it is on a user's computer, so the two are timed apart.
 *
 * Prints one JSON line on stdout once the server listens and the user is signed in:
 * {"event":"ready","url":"http://127.0.0.1:PORT","edgeUrl":"http://127.0.0.1:PORT","token":"...","edgeToken":"..."}
 * (edgeUrl: edge routing's port when CTLL_EDGE_PORT is set; edgeToken: the --edge-user's, when
 * given); logs go to stderr. SIGTERM
 * closes the server, which stops and removes the user's proxy container and network.
 *
 *   node --import tsx bench/deployed-server.ts --user NAME [--edge-user NAME]   (env: CTLL_* as for start:headless)
 */
import { onShutdownSignal } from '@cloudtolocalllm/bridge/shutdown-signals';
import { startCloudServer } from '@cloudtolocalllm/server/cloud-server';
import { createLogger } from '@cloudtolocalllm/server/log';
import { readHeadlessConfig } from '../scripts/headless-config.js';
import { headlessSignIn } from '../scripts/headless-login.js';

// --edge-user NAME (the benchmark's own flag, not start:headless's): a second user, whose bridge
// connects through nginx in front (the edge path), with its own proxy; the first user's bridge
// connects to the api-backend itself.
const argv = process.argv.slice(2);
const at = argv.indexOf('--edge-user');
const edgeUser = at === -1 ? undefined : argv.splice(at, 2)[1];
const options = readHeadlessConfig(['--runtime', 'docker', ...argv]);
const log = createLogger({ component: 'bench-deployed-server' }, options.server.logLevel);
// start:headless's token lifetime: a full benchmark run outlives the default 10 minutes.
const server = await startCloudServer(options.server, { log, accessTokenTtlSec: 12 * 3600 });
onShutdownSignal(() => server.close());
const issuer = server.embeddedIssuer;
if (!issuer) throw new Error('the deployed path needs the embedded issuer (unset AUTH0_*)');
const signIn = async (username: string): Promise<string> => (await headlessSignIn({ issuer: issuer.issuer, clientId: issuer.desktopClientId, audience: server.audience, username })).accessToken;
const token = await signIn(options.user);
const edgeToken = edgeUser ? await signIn(edgeUser) : undefined;
process.stdout.write(JSON.stringify({ event: 'ready', url: server.url, edgeUrl: server.edgeUrl, token, ...(edgeToken ? { edgeToken } : {}) }) + '\n');
