/**
 * Builds the web client the cloud server serves (server/src/api/static-files.ts): each top-level
 * server/web/*.ts is bundled for browsers into server/dist/web/<name>.js (shared code lives in
 * server/web/lib/), and the pages, style sheet and images are copied with their folders:
 *
 *   server/web/index.html       → /          the landing page
 *   server/web/app/index.html   → /app/      the chat app
 *   server/web/docs/index.html  → /docs/     the docs
 *   server/web/app.ts           → /app.js
 *
 *   npx tsx scripts/build-web.ts [outDir]
 */
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const WEB_SOURCE = join(ROOT, 'server', 'web');
export const DEFAULT_WEB_OUT = join(ROOT, 'server', 'dist', 'web');

/** What is copied as it is; everything else in server/web (ts, tsconfig) is not published. */
const STATIC_EXTENSIONS = new Set(['.html', '.css', '.svg', '.png', '.ico', '.txt', '.webmanifest']);

export interface BuildWebResult {
  outDir: string;
  /** Every file written, relative to outDir with '/' separators, sorted. */
  files: string[];
  ms: number;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

export async function buildWeb(outDir: string = DEFAULT_WEB_OUT): Promise<BuildWebResult> {
  const started = performance.now();
  const out = resolve(outDir);
  const sources = await walk(WEB_SOURCE);
  const entries = sources.filter((f) => dirname(f) === WEB_SOURCE && f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.endsWith('.test.ts'));
  const statics = sources.filter((f) => STATIC_EXTENSIONS.has(extname(f)));

  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  await Promise.all([
    build({
      entryPoints: entries,
      outdir: out,
      bundle: true,
      // Classic scripts loaded with `defer`; nothing depends on module semantics.
      format: 'iife',
      platform: 'browser', // a Node import anywhere in the graph fails the build here
      target: ['chrome115', 'safari16'],
      tsconfig: join(WEB_SOURCE, 'tsconfig.json'),
      minify: true,
      sourcemap: 'linked',
      charset: 'utf8',
      legalComments: 'linked',
      logLevel: 'warning',
    }),
    ...statics.map(async (file) => {
      const target = join(out, relative(WEB_SOURCE, file));
      await mkdir(dirname(target), { recursive: true });
      await copyFile(file, target);
    }),
  ]);
  const files = (await walk(out)).map((f) => relative(out, f).split(sep).join('/')).sort();
  return { outDir: out, files, ms: Math.round(performance.now() - started) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const result = await buildWeb(process.argv[2]);
  console.log(`web client: ${result.files.join(', ')} → ${result.outDir} (${result.ms} ms)`);
}
