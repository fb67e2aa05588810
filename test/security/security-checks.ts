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

/** Every npm package of the repository, each with its own package.json, lockfile and allowScripts. */
export const PACKAGES = ['.', 'server', 'tools/lint'];

/** The per-user proxy image as the Docker tests build it (scripts/build-proxy-image.sh), read by its tag. */
export const PROXY_IMAGE = process.env['CTLL_PROXY_IMAGE'] ?? 'cloudtolocalllm/streaming-proxy:local';
export const PROXY_IMAGE_ALLOWLIST = join(ROOT, 'test/security/proxy-image-files.txt');
