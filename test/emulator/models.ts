// The emulator's model store: what /api/tags lists, what /api/show describes, what generate/chat
// accept, and what pull/create/copy/delete change. Also the uploaded blob digests and the
// "loaded" models /api/ps reports. Nothing is on disk; every emulator starts from the same seed.

import { createHash } from 'node:crypto';

export interface ModelDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[];
  parameter_size: string;
  quantization_level: string;
}

export interface ModelEntry {
  /** Short name as Ollama lists it, always with a tag: "llama3.2:latest". */
  name: string;
  modifiedAt: Date;
  size: number;
  /** Manifest digest, 64 hex characters without the "sha256:" prefix, as in /api/tags. */
  digest: string;
  details: ModelDetails;
  capabilities: string[];
  contextLength: number;
  embeddingLength: number;
  parameterCount: number;
  template: string;
  parameters: string;
  system?: string;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

const LLAMA_TEMPLATE = '<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n';
const CHATML_TEMPLATE = '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n';

type Seed = Omit<ModelEntry, 'modifiedAt' | 'digest'>;

const SEED: readonly Seed[] = [
  {
    name: 'llama3.2:latest', size: 2019393189,
    details: { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '3.2B', quantization_level: 'Q4_K_M' },
    capabilities: ['completion', 'tools'], contextLength: 131072, embeddingLength: 3072, parameterCount: 3212749888,
    template: LLAMA_TEMPLATE, parameters: 'stop                           "<|start_header_id|>"\nstop                           "<|end_header_id|>"\nstop                           "<|eot_id|>"',
  },
  {
    name: 'qwen2.5:0.5b', size: 397821319,
    details: { parent_model: '', format: 'gguf', family: 'qwen2', families: ['qwen2'], parameter_size: '494.03M', quantization_level: 'Q4_K_M' },
    capabilities: ['completion', 'tools', 'insert'], contextLength: 32768, embeddingLength: 896, parameterCount: 494032768,
    template: CHATML_TEMPLATE, parameters: '',
    system: 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.',
  },
  {
    name: 'nomic-embed-text:latest', size: 274302450,
    details: { parent_model: '', format: 'gguf', family: 'nomic-bert', families: ['nomic-bert'], parameter_size: '137M', quantization_level: 'F16' },
    capabilities: ['embedding'], contextLength: 2048, embeddingLength: 768, parameterCount: 136727040,
    template: '{{ .Prompt }}', parameters: 'num_ctx                        8192',
  },
];

/**
 * Ollama's name normalisation, reduced to what clients send: a missing tag means ":latest", the
 * default registry and "library/" namespace are implied, and names compare case-insensitively.
 */
export function canonicalModelName(name: string): string {
  let n = name.trim().replace(/^registry\.ollama\.ai\//i, '').replace(/^library\//i, '');
  const lastSlash = n.lastIndexOf('/');
  if (!n.slice(lastSlash + 1).includes(':')) n += ':latest';
  return n;
}

/** The OpenAI "owned_by" of a model: its namespace, "library" for official models. */
export function modelNamespace(name: string): string {
  const parts = canonicalModelName(name).split('/');
  return parts.length >= 2 ? (parts[parts.length - 2] ?? 'library') : 'library';
}

export interface LoadedModel {
  entry: ModelEntry;
  expiresAt: Date;
}

/** keep_alive as Ollama reads it: seconds as a number, or a Go duration such as "5m", "1h30m", "-1". */
export function keepAliveMs(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value * 1000;
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^-?\d+$/.test(text)) return Number(text) * 1000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  // eslint-disable-next-line security/detect-unsafe-regex -- sticky, and the optional fraction starts with a literal '.': linear
  const re = /(-?\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (units[m[2] ?? 's'] ?? 1000);
    matched = re.lastIndex;
  }
  return matched === text.length ? total : undefined;
}

const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000;

export class ModelRegistry {
  private readonly models = new Map<string, ModelEntry>();
  private readonly blobs = new Set<string>();
  private readonly loaded = new Map<string, LoadedModel>();

  constructor(seed: readonly Seed[] = SEED, now = new Date()) {
    for (const s of seed) {
      this.models.set(s.name.toLowerCase(), { ...s, details: { ...s.details }, capabilities: [...s.capabilities], modifiedAt: now, digest: sha256Hex(`manifest:${s.name}`) });
    }
  }

  list(): ModelEntry[] {
    return [...this.models.values()];
  }

  get(name: string): ModelEntry | undefined {
    return this.models.get(canonicalModelName(name).toLowerCase());
  }

  /** Adds (or refreshes) a model, copying the description of `like` or guessing one from the name. */
  add(name: string, like?: ModelEntry): ModelEntry {
    const canonical = canonicalModelName(name);
    const embedding = /embed/i.test(canonical);
    const base: ModelEntry = like ?? {
      name: canonical, modifiedAt: new Date(), size: 1_000_000_000 + (parseInt(sha256Hex(canonical).slice(0, 6), 16) % 1_000_000_000),
      digest: '',
      details: { parent_model: '', format: 'gguf', family: embedding ? 'bert' : 'llama', families: [embedding ? 'bert' : 'llama'], parameter_size: '1.0B', quantization_level: 'Q4_K_M' },
      capabilities: embedding ? ['embedding'] : ['completion'], contextLength: 8192, embeddingLength: embedding ? 768 : 2048, parameterCount: 1_000_000_000,
      template: '{{ .Prompt }}', parameters: '',
    };
    const entry: ModelEntry = {
      ...base, name: canonical, modifiedAt: new Date(), digest: sha256Hex(`manifest:${canonical}:${Date.now()}`),
      details: { ...base.details, families: [...base.details.families] }, capabilities: [...base.capabilities],
    };
    this.models.set(canonical.toLowerCase(), entry);
    return entry;
  }

  copy(source: string, destination: string): ModelEntry | undefined {
    const from = this.get(source);
    return from ? this.add(destination, from) : undefined;
  }

  delete(name: string): boolean {
    const key = canonicalModelName(name).toLowerCase();
    this.loaded.delete(key);
    return this.models.delete(key);
  }

  /** Digests are stored as "sha256:<hex>". */
  hasBlob(digest: string): boolean {
    return this.blobs.has(digest);
  }

  addBlob(digest: string): void {
    this.blobs.add(digest);
  }

  /** Records a use for /api/ps; keep_alive 0 unloads, a negative one keeps the model forever. */
  touch(entry: ModelEntry, keepAlive: unknown): void {
    const key = entry.name.toLowerCase();
    const ms = keepAliveMs(keepAlive) ?? DEFAULT_KEEP_ALIVE_MS;
    if (ms === 0) {
      this.loaded.delete(key);
      return;
    }
    const expiresAt = ms < 0 ? new Date(Date.UTC(2318, 0, 1)) : new Date(Date.now() + ms);
    this.loaded.set(key, { entry, expiresAt });
  }

  running(now = Date.now()): LoadedModel[] {
    for (const [key, m] of this.loaded) if (m.expiresAt.getTime() <= now) this.loaded.delete(key);
    return [...this.loaded.values()].sort((a, b) => b.expiresAt.getTime() - a.expiresAt.getTime());
  }
}
