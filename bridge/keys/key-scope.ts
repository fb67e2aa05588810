/**
 * What a client key may do (issue 9), decided on the computer, never in the cloud: inference and
 * reads by default; a model management endpoint only when the key allows it AND the computer's
 * own policy does; with a model allow-list, only those models, and the lists (/api/tags,
 * /api/ps, /v1/models) show only those. Pure functions: no network, no files.
 */
import type { KeyScope } from '../connection/client-key.js';
import { MANAGEMENT_ENDPOINTS, type ManagementEndpoint, type OllamaRoute } from '../ingress/ollama-routes.js';
import { settingName, type CloudPolicy } from '../ingress/policy.js';
import type { KeyDefinition } from './key-store.js';

/**
 * What the rules read of a key: its definition on the computer that made it, or, on another of
 * the user's computers, the scope the proxy passed with the request (keyFromScope).
 */
export type KeyRules = Pick<KeyDefinition, 'id' | 'name' | 'models' | 'allow' | 'machines' | 'expiresAt'>;

/** A key made on another computer, from its scope: management endpoints this bridge does not know are dropped (fail closed). */
export function keyFromScope(id: string, scope: KeyScope): KeyRules {
  const known = MANAGEMENT_ENDPOINTS as readonly string[];
  return {
    id,
    name: scope.name,
    allow: scope.allow.filter((a): a is ManagementEndpoint => known.includes(a)),
    ...(scope.models ? { models: scope.models } : {}),
    ...(scope.machines ? { machines: scope.machines } : {}),
    ...(scope.expiresAt !== undefined ? { expiresAt: scope.expiresAt } : {}),
  };
}

/** A key limited to some computers, used on another: the proxy routes it only among its computers; this checks again. */
export function machineRefusal(key: KeyRules, machine: string): Refusal | undefined {
  if (!key.machines || key.machines.includes(machine)) return undefined;
  return { status: 403, code: 'key-machine', message: `the key "${key.name}" may not use the computer ${machine}; it may use ${key.machines.join(', ')}` };
}

export interface Refusal {
  status: number;
  code: string;
  message: string;
}

/** Routes whose JSON body names the model(s) it acts on, and the fields that do. */
const MODEL_FIELDS: Record<string, readonly string[]> = {
  show: ['model', 'name'],
  generate: ['model'],
  chat: ['model'],
  embed: ['model'],
  embeddings: ['model'],
  'openai-chat': ['model'],
  'openai-completions': ['model'],
  'openai-embeddings': ['model'],
  pull: ['model', 'name'],
  push: ['model', 'name'],
  create: ['model', 'name', 'from'],
  copy: ['source', 'destination'],
  delete: ['model', 'name'],
};

/** Routes whose answer lists models: filtered for a key with an allow-list. */
export const LIST_ROUTES: ReadonlySet<string> = new Set(['tags', 'ps', 'openai-models']);

/** Ollama's names: `llama3.2` is `llama3.2:latest`. */
export function normalizeModel(name: string): string {
  const last = name.slice(name.lastIndexOf('/') + 1);
  return last.includes(':') ? name : `${name}:latest`;
}

export function modelAllowed(models: readonly string[] | undefined, name: string): boolean {
  if (!models) return true;
  const wanted = normalizeModel(name);
  return models.some((m) => normalizeModel(m) === wanted);
}

/** Does this route need its body read to check a key's model allow-list? */
export function needsModelCheck(key: KeyRules, route: OllamaRoute): boolean {
  return key.models !== undefined && route.name in MODEL_FIELDS;
}

function allowedText(models: readonly string[]): string {
  return models.map((m) => `"${m}"`).join(', ');
}

/** Refusal for the key itself (unknown, expired, management) before any body is read. */
export function keyRefusal(key: KeyRules | undefined, route: OllamaRoute, path: string, policy: CloudPolicy, now = Date.now()): Refusal | undefined {
  if (!key) return { status: 401, code: 'key-unknown', message: 'this key is not known to your computer (it was revoked); make a new one' };
  if (key.expiresAt !== undefined && key.expiresAt <= now) {
    return { status: 401, code: 'key-expired', message: `the key "${key.name}" expired at ${new Date(key.expiresAt).toISOString()}; make a new one` };
  }
  if (route.management) {
    if (!key.allow.includes(route.management)) {
      return {
        status: 403,
        code: 'key-scope',
        message: `${path} is model management (${route.management}), which the key "${key.name}" may not use; make a key with --allow ${route.management}`,
      };
    }
    if (!policy.allowManagement.has(route.management)) {
      return {
        status: 403,
        code: 'policy',
        message: `${path} is model management (${route.management}), which your computer does not allow from the cloud. To allow it, turn on ${settingName(route.management)}.`,
      };
    }
  }
  if (route.name === 'openai-model' && key.models) {
    const name = decodeURIComponent(path.slice('/v1/models/'.length));
    if (!modelAllowed(key.models, name)) return modelRefusal(key, name);
  }
  return undefined;
}

function modelRefusal(key: KeyRules, name: string): Refusal {
  return {
    status: 403,
    code: 'key-model',
    message: `the key "${key.name}" may not use the model "${name}"; it may use ${allowedText(key.models ?? [])}`,
  };
}

/** Checks the model(s) a request body names against the key's allow-list. */
export function bodyRefusal(key: KeyRules, route: OllamaRoute, body: Buffer): Refusal | undefined {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { status: 400, code: 'bad-json', message: `the body of ${route.name} is not JSON, so its model cannot be checked against the key's models` };
  }
  const fields = MODEL_FIELDS[route.name] ?? [];
  const names = fields.map((f) => (json as Record<string, unknown> | null)?.[f]).filter((v): v is string => typeof v === 'string');
  if (names.length === 0) return { status: 400, code: 'no-model', message: `the request names no model; the key "${key.name}" may use ${allowedText(key.models ?? [])}` };
  const denied = names.find((n) => !modelAllowed(key.models, n));
  return denied === undefined ? undefined : modelRefusal(key, denied);
}

/** The list answer with only the models the key may use; unchanged when it is not the expected JSON. */
export function filterModelList(routeName: string, body: Buffer, models: readonly string[]): Buffer {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    return Buffer.from(JSON.stringify({ error: 'your Ollama answered the model list with something that is not JSON' }));
  }
  const field = routeName === 'openai-models' ? 'data' : 'models';
  const nameOf = (m: Record<string, unknown>): string => String(routeName === 'openai-models' ? m['id'] : (m['model'] ?? m['name']));
  const list = json[field];
  // Fail closed: a list we cannot read is emptied rather than passed whole.
  json[field] = Array.isArray(list) ? list.filter((m) => typeof m === 'object' && m !== null && modelAllowed(models, nameOf(m as Record<string, unknown>))) : [];
  return Buffer.from(JSON.stringify(json));
}
