/**
 * The Ollama HTTP API, as a table: the only requests the bridge will ever send to Ollama.
 * Anything not in here is refused before the network is touched (shared/OLLAMA-API.md).
 */

/** What a route does, for the cloud policy: reads and inference are harmless to expose. */
export type RouteKind = 'read' | 'inference' | 'management';

/** Model management endpoints, each separately allowed by the policy. */
export const MANAGEMENT_ENDPOINTS = ['pull', 'push', 'create', 'copy', 'delete', 'blobs'] as const;
export type ManagementEndpoint = (typeof MANAGEMENT_ENDPOINTS)[number];

export interface OllamaRoute {
  /** Stable name, used in refusals, logs and metrics. */
  name: string;
  methods: readonly string[];
  kind: RouteKind;
  /** For management routes: the policy switch that allows it. */
  management?: ManagementEndpoint;
  match(path: string): boolean;
}

const exact =
  (p: string) =>
  (path: string): boolean =>
    path === p;

// Ollama accepts both `sha256:` and `sha256-` digests in blob paths.
const BLOB_PATH = /^\/api\/blobs\/sha256[:-][0-9a-fA-F]{64}$/;
// Model names: registry host, namespace, name and tag, e.g. `hf.co/org/model:Q4_K_M`.
const V1_MODEL_PATH = /^\/v1\/models\/[A-Za-z0-9._-][A-Za-z0-9._:/-]{0,254}$/;

export const OLLAMA_ROUTES: readonly OllamaRoute[] = [
  { name: 'root', methods: ['GET', 'HEAD'], kind: 'read', match: exact('/') },
  { name: 'version', methods: ['GET', 'HEAD'], kind: 'read', match: exact('/api/version') },
  { name: 'tags', methods: ['GET', 'HEAD'], kind: 'read', match: exact('/api/tags') },
  { name: 'ps', methods: ['GET', 'HEAD'], kind: 'read', match: exact('/api/ps') },
  { name: 'show', methods: ['POST'], kind: 'read', match: exact('/api/show') },
  { name: 'generate', methods: ['POST'], kind: 'inference', match: exact('/api/generate') },
  { name: 'chat', methods: ['POST'], kind: 'inference', match: exact('/api/chat') },
  { name: 'embed', methods: ['POST'], kind: 'inference', match: exact('/api/embed') },
  { name: 'embeddings', methods: ['POST'], kind: 'inference', match: exact('/api/embeddings') },
  { name: 'pull', methods: ['POST'], kind: 'management', management: 'pull', match: exact('/api/pull') },
  { name: 'push', methods: ['POST'], kind: 'management', management: 'push', match: exact('/api/push') },
  { name: 'create', methods: ['POST'], kind: 'management', management: 'create', match: exact('/api/create') },
  { name: 'copy', methods: ['POST'], kind: 'management', management: 'copy', match: exact('/api/copy') },
  { name: 'delete', methods: ['DELETE'], kind: 'management', management: 'delete', match: exact('/api/delete') },
  { name: 'blobs', methods: ['HEAD', 'POST'], kind: 'management', management: 'blobs', match: (p) => BLOB_PATH.test(p) },
  { name: 'openai-chat', methods: ['POST'], kind: 'inference', match: exact('/v1/chat/completions') },
  { name: 'openai-completions', methods: ['POST'], kind: 'inference', match: exact('/v1/completions') },
  { name: 'openai-embeddings', methods: ['POST'], kind: 'inference', match: exact('/v1/embeddings') },
  { name: 'openai-models', methods: ['GET'], kind: 'read', match: exact('/v1/models') },
  { name: 'openai-model', methods: ['GET'], kind: 'read', match: (p) => V1_MODEL_PATH.test(p) },
];

export function findRoute(path: string): OllamaRoute | undefined {
  return OLLAMA_ROUTES.find((r) => r.match(path));
}
