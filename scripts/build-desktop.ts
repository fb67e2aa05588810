/**
 * Builds the desktop app for Electron: the main process bundled into dist/main/main.js with the
 * packages of this project it uses (@cloudtolocalllm/bridge; its other npm dependencies, the
 * root package.json's `dependencies`, stay external: electron-builder ships them), the windows and the preload
 * (scripts/build-renderer.ts), and, for runs from source only, the local stack: the cloud server
 * on this machine bundled into dist/main/local-stack.js with its web client in dist/web (neither
 * is packaged: electron-builder.yml).
 *
 *   npx tsx scripts/build-desktop.ts [--no-local-stack]
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import packageJson from '../package.json' with { type: 'json' };
import { buildRenderer } from './build-renderer.js';
import { buildWeb } from './build-web.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What electron-builder ships in node_modules: everything else the main process uses is bundled. */
const SHIPPED_DEPENDENCIES = Object.keys(packageJson.dependencies);

export interface BuildDesktopOptions {
  /** Default true: also build the local stack bundle (runs from source only). */
  localStack?: boolean;
  /** Where dist/ goes; default the project's dist/. Tests build into a folder of their own. */
  outDir?: string;
}

export async function buildDesktop(options: BuildDesktopOptions = {}): Promise<void> {
  const started = performance.now();
  const out = options.outDir ?? join(ROOT, 'dist');
  const common = {
    bundle: true,
    platform: 'node' as const,
    format: 'esm' as const,
    // Electron 45 runs its main process on Node 22.
    target: 'node22',
    sourcemap: true,
    logLevel: 'warning' as const,
    // CommonJS dependencies inside an ESM bundle (ssh2 under dockerode, for one) use require,
    // __filename and __dirname, which ES modules do not have: define them for the bundle's file.
    banner: {
      js: [
        "import { createRequire as __ctllCreateRequire } from 'node:module';",
        "import { fileURLToPath as __ctllFileURLToPath } from 'node:url';",
        "import { dirname as __ctllDirname } from 'node:path';",
        'const require = __ctllCreateRequire(import.meta.url);',
        'const __filename = __ctllFileURLToPath(import.meta.url);',
        'const __dirname = __ctllDirname(__filename);',
      ].join(' '),
    },
  };
  await build({
    ...common,
    entryPoints: [join(ROOT, 'main', 'main.ts')],
    outfile: join(out, 'main', 'main.js'),
    external: ['electron', './local-stack.js', ...SHIPPED_DEPENDENCIES],
  });
  await buildRenderer({ outDir: join(out, 'renderer'), preloadFile: join(out, 'main', 'preload.cjs') });
  if (options.localStack !== false) {
    // The server and its dependencies are bundled in whole (none of them is the desktop's to
    // ship), so the file runs from dist/main. Native optional parts of the Docker client stay out.
    await build({
      ...common,
      entryPoints: [join(ROOT, 'main', 'local-stack.ts')],
      outfile: join(out, 'main', 'local-stack.js'),
      external: ['electron', 'cpu-features', '*.node'],
    });
    // The web client the local stack serves at /, /app/ and /docs/ (main/local-stack.ts).
    await buildWeb(join(out, 'web'));
  }
  process.stderr.write(`desktop built in ${Math.round(performance.now() - started)} ms\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildDesktop({ localStack: !process.argv.includes('--no-local-stack') });
}
