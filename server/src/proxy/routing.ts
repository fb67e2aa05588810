/**
 * Which of a user's connected computers serves a request (issue 10), as pure functions over
 * what the proxy knows of each: its models, what it has loaded, its requests in flight. The
 * streaming proxy (dispatch.ts) gathers that state; nothing here does I/O.
 */
import { findRoute } from '@cloudtolocalllm/bridge/ingress/ollama-routes';

/** Ollama's own name rule, reduced to what clients send: no tag means ":latest", case does not count. */
export function canonicalModelName(name: string): string {
  let n = name.trim().replace(/^registry\.ollama\.ai\//i, '').replace(/^library\//i, '');
  const last = n.slice(n.lastIndexOf('/') + 1);
  if (!last.includes(':')) n += ':latest';
  return n.toLowerCase();
}

/** What routing needs of one computer. */
export interface Candidate {
  name: string;
  /** Canonical names of its models (/api/tags). */
  models: ReadonlySet<string>;
  /** Canonical names of what it has loaded (/api/ps). */
  loaded: ReadonlySet<string>;
  inFlight: number;
}

/**
 * The computer for a request naming `model`: one that has it; among those, one that has it
 * loaded right now first (no load wait, no second copy in memory); then the fewest requests in
 * flight; among equals, the next in turn (`turn` counts the proxy's routed requests), so ties
 * spread evenly. Undefined when no computer has the model.
 */
export function pickForModel<C extends Candidate>(candidates: readonly C[], model: string, turn: number): C | undefined {
  const name = canonicalModelName(model);
  const having = candidates.filter((c) => c.models.has(name));
  const loaded = having.filter((c) => c.loaded.has(name));
  return pickLeastBusy(loaded.length ? loaded : having, turn);
}

/** The computer with the fewest requests in flight; equals take turns (sorted by name, so stable). */
export function pickLeastBusy<C extends { name: string; inFlight: number }>(candidates: readonly C[], turn: number): C | undefined {
  if (candidates.length === 0) return undefined;
  const least = Math.min(...candidates.map((c) => c.inFlight));
  const ties = candidates.filter((c) => c.inFlight === least).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return ties[turn % ties.length];
}

/**
 * The computer for a request any computer can answer (/, /api/version, one naming no model):
 * always the same one, the first by name, never in turn and not by requests in flight. Ollama
 * answers these at once, beside any generation, so spreading them gains the user nothing; and
 * turning them over computers wakes a sleeping bridge for each (docs/benchmarks.md, "Three
 * computers"). In-flight counts would turn them anyway: an answer stays in flight until its
 * completion trailer, after the client already has its last byte and sent the next request.
 */
export function pickAny<C extends { name: string }>(candidates: readonly C[]): C | undefined {
  let first: C | undefined;
  for (const c of candidates) if (!first || c.name < first.name) first = c;
  return first;
}

/** How the proxy treats a request when several computers are connected. */
export type RouteClass =
  /** Answered as the union of every computer's answer. */
  | { kind: 'union'; what: 'tags' | 'ps' | 'openai-models' }
  /** Changes one computer's models: needs a pinned computer. */
  | { kind: 'management' }
  /** Names a model: in the JSON body's `model`, or in the path (`/v1/models/NAME`). */
  | { kind: 'model'; fromPath?: string }
  /** Any computer can answer (/, /api/version, and what is not the Ollama API: the bridge refuses it). */
  | { kind: 'any' };

export function classify(method: string, path: string): RouteClass {
  const route = findRoute(path);
  if (!route) return { kind: 'any' };
  if (route.kind === 'management') return { kind: 'management' };
  if (method === 'GET' || method === 'HEAD') {
    if (route.name === 'tags') return { kind: 'union', what: 'tags' };
    if (route.name === 'ps') return { kind: 'union', what: 'ps' };
    if (route.name === 'openai-models') return { kind: 'union', what: 'openai-models' };
    if (route.name === 'openai-model') return { kind: 'model', fromPath: decodeURIComponent(path.slice('/v1/models/'.length)) };
    return { kind: 'any' };
  }
  if (route.name === 'show' || route.kind === 'inference') return { kind: 'model' };
  return { kind: 'any' };
}

/** The `model` a JSON request body names, if any (a body that is not JSON names none: Ollama answers it). */
export function modelOfBody(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { model?: unknown; name?: unknown } | null;
    // /api/show took `name` before `model`; Ollama still accepts it.
    const model = parsed?.model ?? parsed?.name;
    return typeof model === 'string' && model.trim() ? model : undefined;
  } catch {
    return undefined;
  }
}

interface Named {
  name?: unknown;
  model?: unknown;
}

function entryName(e: Named): string | undefined {
  const n = typeof e.name === 'string' ? e.name : typeof e.model === 'string' ? e.model : undefined;
  return n === undefined ? undefined : canonicalModelName(n);
}

/** /api/tags of several computers as one: one entry per model name, the newest `modified_at` wins. */
export function unionTags<T extends Named & { modified_at?: unknown }>(lists: ReadonlyArray<readonly T[]>): T[] {
  const byName = new Map<string, T>();
  const time = (e: T): number => (typeof e.modified_at === 'string' ? Date.parse(e.modified_at) || 0 : 0);
  for (const list of lists) {
    for (const e of list) {
      const name = entryName(e);
      if (name === undefined) continue;
      const seen = byName.get(name);
      if (!seen || time(e) > time(seen)) byName.set(name, e);
    }
  }
  return [...byName.values()];
}

/** /api/ps of several computers as one: one entry per model name (the one that stays loaded longest). */
export function unionPs<T extends Named & { expires_at?: unknown }>(lists: ReadonlyArray<readonly T[]>): T[] {
  const byName = new Map<string, T>();
  const time = (e: T): number => (typeof e.expires_at === 'string' ? Date.parse(e.expires_at) || 0 : 0);
  for (const list of lists) {
    for (const e of list) {
      const name = entryName(e);
      if (name === undefined) continue;
      const seen = byName.get(name);
      if (!seen || time(e) > time(seen)) byName.set(name, e);
    }
  }
  return [...byName.values()];
}

/** /v1/models of several computers as one: one entry per id, the newest `created` wins. */
export function unionOpenAiModels<T extends { id?: unknown; created?: unknown }>(lists: ReadonlyArray<readonly T[]>): T[] {
  const byId = new Map<string, T>();
  const time = (e: T): number => (typeof e.created === 'number' ? e.created : 0);
  for (const list of lists) {
    for (const e of list) {
      if (typeof e.id !== 'string') continue;
      const id = canonicalModelName(e.id);
      const seen = byId.get(id);
      if (!seen || time(e) > time(seen)) byId.set(id, e);
    }
  }
  return [...byId.values()];
}

/** Canonical model names from an /api/tags or /api/ps answer. */
export function namesOf(list: readonly Named[]): Set<string> {
  const out = new Set<string>();
  for (const e of list) {
    const n = entryName(e);
    if (n !== undefined) out.add(n);
  }
  return out;
}
