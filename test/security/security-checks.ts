/**
 * Where the security checks of test/security look, in one place (a restructuring of the packages
 * changes only this file): the lint's own package and configuration, the npm packages whose
 * dependencies are checked, and the proxy image with its file allow-list.
 */
import { join } from 'node:path';
import { ROOT } from '../deploy/deploy-harness.js';

/** The lint's package (its own node_modules: TypeScript 6 for the parser, see its config). */
export const LINT_PACKAGE = join(ROOT, 'tools/lint');
export const LINT_CONFIG = join(LINT_PACKAGE, 'eslint.config.js');

/**
 * Every install root of the repository: each has its own lockfile, node_modules and allowScripts.
 * The root is the npm workspace: its one tree holds every workspace package (bridge, server, the
 * contract packages...), checked with it; tools/lint is installed apart (its own TypeScript 6).
 */
export const PACKAGES = ['.', 'tools/lint'];

/** The per-user proxy image as the Docker tests build it (scripts/build-proxy-image.sh), read by its tag. */
export const PROXY_IMAGE = process.env['CTLL_PROXY_IMAGE'] ?? 'cloudtolocalllm/streaming-proxy:local';
export const PROXY_IMAGE_ALLOWLIST = join(ROOT, 'test/security/proxy-image-files.txt');
