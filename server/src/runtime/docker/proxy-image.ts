/**
 * The image every per-user proxy runs, made ready before the Docker runtime is used: on a fresh
 * machine with Docker but no image (a new user's first `npm run start:headless`), or with an
 * image older than its inputs (after a `git pull` or a Node upgrade), the server builds it
 * offline with the project's one builder, scripts/build-proxy-image.sh. That script is also the
 * judge of "older": it hashes every input (the proxy bundle, the node binary and its libraries,
 * the Dockerfile, itself) and compares the hash with the label the image carries, rebuilding
 * only when they differ (an up-to-date check takes about a second).
 *
 * Images the builder did not make (no inputs label: pulled from a registry, built by hand) are
 * used as they are. Where there is no builder (the bundled api-backend of a deployment, whose
 * images the deploy script builds), nothing is checked here.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PROXY_IMAGE } from '@cloudtolocalllm/proxy-spec/container-spec';
import type Docker from 'dockerode';
import type { Logger } from '../../log.js';
import { engineMessage, statusOf } from './docker-errors.js';

export const DEFAULT_IMAGE = DEFAULT_PROXY_IMAGE;
/** Set by the builder: the SHA-256 of the image's inputs. */
export const INPUTS_LABEL = 'cloudtolocalllm.inputs-sha256';
/** Set by the builder: which of its Dockerfiles (BASE) made the image. */
export const BASE_LABEL = 'cloudtolocalllm.image-base';
/** The builder, where this is a checkout of the project (a bundled server has none). */
export const BUILD_SCRIPT = fileURLToPath(new URL('../../../../scripts/build-proxy-image.sh', import.meta.url));
/** A build from a warm cache takes seconds and a cold one well under a minute; past this, something hangs. */
const BUILD_TIMEOUT_MS = 5 * 60_000;
/** How the builder starts the line that says why it failed. */
const VERDICT = 'build-proxy-image: error: ';

export type ImageState =
  | { kind: 'missing' }
  | { kind: 'built'; inputs: string; base: string }
  | { kind: 'foreign' }
  | { kind: 'unknown'; error: string };

/** What the engine knows about `image`: missing, made by our builder (with its inputs hash), or someone else's. */
export async function inspectImage(docker: Docker, image: string): Promise<ImageState> {
  try {
    const info = await docker.getImage(image).inspect();
    const labels = info.Config?.Labels ?? {};
    const inputs = labels[INPUTS_LABEL];
    return inputs ? { kind: 'built', inputs, base: labels[BASE_LABEL] || 'scratch' } : { kind: 'foreign' };
  } catch (e) {
    if (statusOf(e) === 404) return { kind: 'missing' };
    return { kind: 'unknown', error: engineMessage(e) };
  }
}

export type ImageReadiness = { ok: true; built: boolean } | { ok: false; reason: string };

export interface EnsureImageOptions {
  docker: Docker;
  image: string;
  log: Logger;
  /** Default: scripts/build-proxy-image.sh of this checkout. */
  builder?: string;
  /** The builder's environment (default: this process's); IMAGE and BASE are set from the arguments. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Makes sure `image` exists and is as new as its inputs, building it when it is not. Never
 * throws: a proxy image that cannot be made ready comes back as a reason (what failed and how
 * to fix it), for the caller to fall back or give up.
 */
export async function ensureProxyImage(options: EnsureImageOptions): Promise<ImageReadiness> {
  const { docker, image, log } = options;
  const builder = options.builder ?? BUILD_SCRIPT;
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the builder script's path: ours (BUILD_SCRIPT) or a test's, never a request's
  if (!existsSync(builder)) return { ok: true, built: false };
  const state = await inspectImage(docker, image);
  if (state.kind === 'foreign') {
    log.info('the proxy image was not made by scripts/build-proxy-image.sh: using it as it is', { image });
    return { ok: true, built: false };
  }
  if (state.kind === 'unknown') return { ok: false, reason: `the Docker engine cannot tell whether ${image} exists: ${state.error}` };
  if (state.kind === 'missing') {
    log.info(`the proxy image ${image} does not exist yet: building it offline from this machine's node with scripts/build-proxy-image.sh (a few seconds)`);
  }
  const base = state.kind === 'built' ? state.base : 'scratch';
  const started = Date.now();
  const result = await runBuilder(builder, { ...(options.env ?? process.env), IMAGE: image, BASE: base }, (line) => {
    // "is up to date" is the normal start; "building"/"built" is news.
    if (/ is up to date /.test(line)) log.debug(line);
    else log.info(line);
  });
  if (!result.ok) {
    return {
      ok: false,
      reason: `scripts/build-proxy-image.sh could not build ${image}: ${result.error}. Fix that and run scripts/build-proxy-image.sh, or start again`,
    };
  }
  const after = await inspectImage(docker, image);
  if (after.kind !== 'built') return { ok: false, reason: `scripts/build-proxy-image.sh finished, but ${image} is still not there (${after.kind})` };
  const built = state.kind === 'missing' || (state.kind === 'built' && state.inputs !== after.inputs);
  if (built) log.info('proxy image ready', { image, inputs: after.inputs.slice(0, 12), seconds: Math.round((Date.now() - started) / 100) / 10 });
  return { ok: true, built };
}

/** Runs the builder, passing each line it prints to `progress`; resolves with its last error words on failure. */
function runBuilder(script: string, env: NodeJS.ProcessEnv, progress: (line: string) => void): Promise<{ ok: true } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [script], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: BUILD_TIMEOUT_MS, killSignal: 'SIGKILL' });
    let stderr = '';
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) progress(line.trim());
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-8192)));
    child.on('error', (e) => resolve({ ok: false, error: `bash could not run it (${e.message})` }));
    child.on('close', (code, signal) => {
      if (pending.trim()) progress(pending.trim());
      if (code === 0) return resolve({ ok: true });
      const said = stderr
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      // The builder's verdict is its "error:" line; what docker build printed comes before it.
      const verdict = said.findLast((l) => l.startsWith(VERDICT))?.slice(VERDICT.length);
      const output = said.filter((l) => !l.startsWith(VERDICT)).slice(-3);
      const how = verdict ?? (signal ? `it was stopped (${signal}) after ${BUILD_TIMEOUT_MS / 60_000} minutes` : `it exited with ${code}`);
      resolve({ ok: false, error: output.length ? `${how} (its last output: ${output.join(' | ')})` : how });
    });
  });
}
