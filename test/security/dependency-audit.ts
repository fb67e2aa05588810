/**
 * What npm itself knows about a package's installed dependencies, offline: the tree `npm ls`
 * reads from node_modules (problems, and each package's manifest with its `deprecated` field),
 * and the install scripts that npm's allowScripts policy (package.json `allowScripts`, npm 11)
 * does not cover, as `npm install-scripts` reports them with npm's own matcher.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

interface LsNode {
  name?: string;
  version?: string;
  path?: string;
  deprecated?: unknown;
  scripts?: Record<string, string>;
  problems?: string[];
  dependencies?: Record<string, LsNode>;
}

export interface DependencyAudit {
  /** How many installed packages the tree holds. */
  packages: number;
  /** `npm ls` problems: missing, invalid or extraneous packages. */
  problems: string[];
  /** name@version: the package's deprecation message. */
  deprecated: string[];
  /** name@version (event: script; ...) of packages whose install scripts allowScripts does not cover. */
  unreviewedScripts: string[];
  /** allowScripts entries that match no installed package with an install script. */
  staleAllowEntries: string[];
}

/** npm with the package at `dir` as its project, never the network, and no npm_config_* of a parent `npm test`. */
async function npm(dir: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  try {
    const { stdout, stderr } = await run('npm', [...args, '--prefix', dir, '--offline', '--json'], { cwd: dir, env, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof err.code !== 'number') throw new Error(`npm ${args.join(' ')} could not run in ${dir}: ${err.message}`);
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** Does this npm have the allowScripts commands (npm 11's `install-scripts`)? */
export async function npmHasInstallScripts(dir: string): Promise<boolean> {
  const r = await npm(dir, ['install-scripts', 'ls']);
  return r.code === 0;
}

export async function auditDependencies(dir: string): Promise<DependencyAudit> {
  const ls = await npm(dir, ['ls', '--all', '--long']);
  const tree = JSON.parse(ls.stdout || '{}') as LsNode;
  const deprecated = new Set<string>();
  const installScripts = new Map<string, string>();
  const seen = new Set<string>();
  // Every entry is walked: npm ls lists a package in full once and as a "deduped" stub elsewhere,
  // and the stub may come first.
  const walk = (node: LsNode): void => {
    for (const [name, dep] of Object.entries(node.dependencies ?? {})) {
      seen.add(dep.path ?? `${name}@${dep.version}`);
      const id = `${dep.name ?? name}@${dep.version}`;
      if (typeof dep.deprecated === 'string' || dep.deprecated === true) deprecated.add(`${id}: ${String(dep.deprecated)}`);
      const scripts = Object.entries(dep.scripts ?? {}).filter(([event]) => ['preinstall', 'install', 'postinstall'].includes(event));
      if (scripts.length) installScripts.set(id, scripts.map(([event, script]) => `${event}: ${script}`).join('; '));
      walk(dep);
    }
  };
  walk(tree);
  const problems = [...(tree.problems ?? [])];
  if (ls.code !== 0 && problems.length === 0) problems.push(`npm ls exited with ${ls.code}: ${ls.stderr.trim().slice(0, 500)}`);

  const pending = await npm(dir, ['install-scripts', 'ls']);
  if (pending.code !== 0) throw new Error(`npm install-scripts ls failed in ${dir} (exit ${pending.code}): ${pending.stderr.trim().slice(0, 500)}`);
  const unreviewed = (JSON.parse(pending.stdout) as { allowScripts: Array<{ name: string; changes: Array<{ key: string }> }> }).allowScripts;
  const prune = await npm(dir, ['install-scripts', 'prune', '--dry-run']);
  if (prune.code !== 0) throw new Error(`npm install-scripts prune --dry-run failed in ${dir} (exit ${prune.code}): ${prune.stderr.trim().slice(0, 500)}`);
  const stale = (JSON.parse(prune.stdout) as { allowScripts: { removed: Array<{ key: string; reason?: string }> } }).allowScripts.removed;

  return {
    packages: seen.size,
    problems,
    deprecated: [...deprecated],
    unreviewedScripts: unreviewed.flatMap((u) => u.changes.map((c) => `${c.key} (${installScripts.get(c.key) ?? 'binding.gyp: node-gyp rebuild'})`)),
    staleAllowEntries: stale.map((s) => `${s.key} (${s.reason ?? 'no match'})`),
  };
}
