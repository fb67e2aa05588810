/**
 * Builds the desktop app for Electron: the main process bundled into dist/main/main.js (its npm
 * dependencies stay external: electron-builder ships them), the windows and the preload
 * (scripts/build-renderer.ts), and, for runs from source only, the local stack bundle
 * dist/main/local-stack.js (the cloud server on this machine; never packaged).
 *
 *   npx tsx scripts/build-desktop.ts [--no-local-stack]
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { buildRenderer } from './build-renderer.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export async function buildDesktop(options: { localStack?: boolean } = {}): Promise<void> {
  const started = performance.now();
  const common = {
    bundle: true,
    platform: 'node' as const,
    format: 'esm' as const,
    // Electron 45 runs its main process on Node 22.
    target: 'node22',
    sourcemap: true,
    logLevel: 'warning' as const,
    // CommonJS dependencies inside an ESM bundle need a require.
    banner: { js: "import { createRequire as __ctllCreateRequire } from 'node:module'; const require = __ctllCreateRequire(import.meta.url);" },
  };
  await build({
    ...common,
    entryPoints: [join(ROOT, 'main', 'main.ts')],
    outfile: join(ROOT, 'dist', 'main', 'main.js'),
    packages: 'external',
    external: ['electron', './local-stack.js'],
  });
  await buildRenderer();
  if (options.localStack !== false) {
    // The server's dependencies live in server/node_modules: bundle them in, so the file runs
    // from dist/main. Native optional parts of the Docker client stay out (they are optional).
    await build({
      ...common,
      entryPoints: [join(ROOT, 'main', 'local-stack.ts')],
      outfile: join(ROOT, 'dist', 'main', 'local-stack.js'),
      external: ['electron', 'cpu-features', '*.node'],
      nodePaths: [join(ROOT, 'server', 'node_modules')],
    });
  }
  process.stderr.write(`desktop built in ${Math.round(performance.now() - started)} ms\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildDesktop({ localStack: !process.argv.includes('--no-local-stack') });
}
