/**
 * Builds what the windows load: renderer/*.ts bundled for Chromium into dist/renderer/*.js next
 * to copies of renderer/*.html and *.css, and the sandboxed preload bundled into
 * dist/main/preload.cjs (a sandboxed preload can require nothing but `electron`).
 *
 *   npx tsx scripts/build-renderer.ts
 */
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface BuildRendererOptions {
  /** Where the windows' files go; default dist/renderer. Emptied first. */
  outDir?: string;
  /** Where the preload bundle goes; default dist/main/preload.cjs. */
  preloadFile?: string;
}

export interface BuildRendererResult {
  outDir: string;
  preloadFile: string;
  /** Every file written under outDir, by name. */
  files: string[];
  ms: number;
}

export async function buildRenderer(options: BuildRendererOptions = {}): Promise<BuildRendererResult> {
  const started = performance.now();
  const source = join(ROOT, 'renderer');
  const outDir = resolve(options.outDir ?? join(ROOT, 'dist', 'renderer'));
  const preloadFile = resolve(options.preloadFile ?? join(ROOT, 'dist', 'main', 'preload.cjs'));
  const names = (await readdir(source, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  // Each top-level .ts is one window's entry point; shared code lives in renderer/lib/.
  const entries = names.filter((n) => n.endsWith('.ts') && !n.endsWith('.d.ts') && !n.endsWith('.test.ts'));
  const statics = names.filter((n) => n.endsWith('.html') || n.endsWith('.css'));

  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await mkdir(dirname(preloadFile), { recursive: true });
  await Promise.all([
    build({
      entryPoints: entries.map((n) => join(source, n)),
      outdir: outDir,
      bundle: true,
      // Classic scripts loaded with `defer`: nothing in the page depends on module semantics.
      format: 'iife',
      platform: 'browser', // a Node import anywhere in the graph fails the build here, not in the window
      target: 'chrome120',
      tsconfig: join(source, 'tsconfig.json'),
      sourcemap: 'linked',
      charset: 'utf8',
      logLevel: 'warning',
    }),
    build({
      entryPoints: [join(ROOT, 'main', 'preload.ts')],
      outfile: preloadFile,
      bundle: true,
      format: 'cjs',
      platform: 'node',
      external: ['electron'],
      target: ['node20', 'chrome120'],
      tsconfig: join(ROOT, 'tsconfig.json'),
      logLevel: 'warning',
    }),
    ...statics.map((n) => copyFile(join(source, n), join(outDir, n))),
  ]);
  return { outDir, preloadFile, files: (await readdir(outDir)).sort(), ms: Math.round(performance.now() - started) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const result = await buildRenderer();
  console.log(`renderer: ${result.files.join(', ')} → ${result.outDir}`);
  console.log(`preload: ${result.preloadFile} (${result.ms} ms)`);
}
