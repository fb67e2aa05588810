/**
 * What the cloud may ask of this computer's Ollama. Reads and inference are the product's
 * purpose; model management (downloading gigabytes, deleting models, pushing them to a
 * registry) changes the machine, so each such endpoint must be switched on by its owner.
 */
import { findRoute, MANAGEMENT_ENDPOINTS, type ManagementEndpoint, type OllamaRoute } from './ollama-routes.js';
import { checkRequestTarget } from './request-target.js';

export interface CloudPolicy {
  /** Management endpoints the owner allowed; empty by default. */
  allowManagement: ReadonlySet<ManagementEndpoint>;
}

export const DEFAULT_POLICY: CloudPolicy = { allowManagement: new Set() };

/** The name of the desktop setting and of the CLI flag that allow an endpoint, for messages. */
export function settingName(endpoint: ManagementEndpoint): string {
  return `"Allow from the cloud: ${endpoint}" in CloudToLocalLLM's settings (bridge CLI: --allow ${endpoint})`;
}

export function parseManagementList(list: string): Set<ManagementEndpoint> {
  const out = new Set<ManagementEndpoint>();
  for (const raw of list.split(',')) {
    const item = raw.trim().toLowerCase();
    if (!item) continue;
    if (item === 'all') {
      for (const e of MANAGEMENT_ENDPOINTS) out.add(e);
      continue;
    }
    if (!(MANAGEMENT_ENDPOINTS as readonly string[]).includes(item)) {
      throw new Error(`unknown model management endpoint "${item}"; expected any of ${MANAGEMENT_ENDPOINTS.join(', ')} or all`);
    }
    out.add(item as ManagementEndpoint);
  }
  return out;
}

export type Decision =
  | { allow: true; route: OllamaRoute; path: string; query: string }
  | { allow: false; status: number; code: string; message: string; route?: OllamaRoute; allowHeader?: string };

/** Decides one relayed request. Pure: touches no network, so refusals are free and testable. */
export function decide(
  policy: CloudPolicy,
  request: { method: string | undefined; path: string | undefined; authority: string | undefined; scheme: string | undefined },
  ollamaHost: string,
): Decision {
  const target = checkRequestTarget(request.path, request.authority, request.scheme, ollamaHost);
  if (!target.ok) return { allow: false, status: target.status, code: target.code, message: target.message };
  const route = findRoute(target.path);
  if (!route) {
    return {
      allow: false,
      status: 404,
      code: 'not-ollama-api',
      message: `${target.path} is not part of the Ollama API, so your computer's bridge does not relay it`,
    };
  }
  const method = (request.method ?? '').toUpperCase();
  if (!route.methods.includes(method)) {
    return {
      allow: false,
      status: 405,
      code: 'method-not-allowed',
      message: `${method || 'a request without a method'} is not allowed on ${target.path}; use ${route.methods.join(' or ')}`,
      route,
      allowHeader: route.methods.join(', '),
    };
  }
  if (route.management && !policy.allowManagement.has(route.management)) {
    return {
      allow: false,
      status: 403,
      code: 'policy',
      message:
        `${target.path} is model management (${route.management}), which your computer does not allow from the cloud. ` +
        `To allow it, turn on ${settingName(route.management)}.`,
      route,
    };
  }
  return { allow: true, route, path: target.path, query: target.query };
}
