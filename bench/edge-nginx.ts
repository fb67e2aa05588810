/**
 * The edge path of the tunnel benchmark: the deployed nginx configuration (server/deploy/nginx,
 * rendered by scripts/deploy/render-nginx-conf.sh as the deploy script renders it) run by the
 * host's nginx in front of the deployed path's api-backend, with edge routing on
 * (docs/edge-routing.md):
 *
 *   client → nginx ─(auth_request to the api-backend's edge port)─→ the user's proxy ⇐ nginx ⇐ bridge → emulator
 *
 * (the edge path's own bridge connects through this nginx too, straight to its proxy: bench/deployed-path.ts)
 *
 * With `through`, /ollama/ is relayed by the api-backend as before edge routing: the deployed
 * stack's path until now, nginx included, and so the baseline of the lever.
 *
 * Two changes to the production file, both so that the path is compared with the others and not
 * with a different setup: its HTTPS listener speaks plain HTTP here (every other path of the
 * benchmark, ssh -R's forwarded port included, is plain TCP on loopback), and the per-address
 * request limits are raised (policy, like the api-backend's own limits in deployed-path.ts). The
 * access log is on, as in production, written to a file of the run.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, renderNginx, selfSignedCertificate, startNginx } from '../test/deploy/deploy-harness.js';

export interface EdgeNginx {
  /** Base URL for an Ollama client: nginx's /ollama. */
  url: string;
  /** The server name nginx answers for: clients send it as Host. */
  host: string;
  /** Where a bridge connects through it (`${wsUrl}/ws/bridge`), by that server name. */
  wsUrl: string;
  /** nginx's master process: its tree (the workers) is the path's nginx. */
  pid: number;
  close(): Promise<void>;
}

/**
 * `through`: the production configuration as it was before edge routing (every /ollama request
 * relayed by the api-backend behind nginx), the baseline the edge path is compared with.
 */
export async function startEdgeNginx(nginx: string, apiUrl: string, edgeUrl: string, options: { through?: boolean } = {}): Promise<EdgeNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'ctll-bench-edge-'));
  // The workers run as nobody (as the image's run as nginx) and need to reach the run directory.
  chmodSync(dir, 0o755);
  const { cert, key } = await selfSignedCertificate(join(dir, 'tls'));
  const ports = { https: await freePort(), http: await freePort(), health: await freePort() };
  const rendered = await renderNginx(dir, {
    ports,
    upstreamPort: Number(new URL(apiUrl).port),
    edgePort: Number(new URL(edgeUrl).port),
    cert,
    key,
    acmeRoot: join(dir, 'acme'),
    extra: ['--rate-per-ip', '1000000', '--burst-per-ip', '1000000', '--connections-per-ip', '60000'],
  });
  const site = join(rendered.confDir, 'conf.d/cloudtolocalllm.conf');
  const text = readFileSync(site, 'utf8');
  const plain = text.replace(/ ssl http2 default_server;/g, ' default_server;').replace(/ ssl http2;/g, ';').replace(/^\s*ssl_reject_handshake on;$/m, '');
  if (plain === text) throw new Error(`the rendered ${site} has no HTTPS listener to turn into plain HTTP: the benchmark's edit no longer matches the template`);
  const relayed = plain.replace(/include snippets\/edge-route\.conf;\n\s*error_page 403 500 = @ctll_api_\w+;/g, 'proxy_pass http://ctll_api;\n        include snippets/streaming.conf;');
  if (options.through && (relayed === plain || relayed.includes('include snippets/edge-route.conf'))) throw new Error(`the rendered ${site} does not edge-route /ollama/ as the benchmark expects: its edit no longer matches the template`);
  writeFileSync(site, options.through ? relayed : plain);
  const running = await startNginx(nginx, rendered, ports.health);
  const pid = running.child.pid;
  if (pid === undefined) throw new Error('nginx did not start');
  return {
    url: `http://127.0.0.1:${ports.https}/ollama`,
    wsUrl: `ws://localhost:${ports.https}`,
    host: `localhost:${ports.https}`,
    pid,
    async close() {
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
