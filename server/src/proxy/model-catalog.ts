/**
 * What one computer has (issue 10): its models (/api/tags) and what it has loaded (/api/ps),
 * asked through its own link, as any client would. Kept only while several computers are
 * connected (bridge-links.ts): with one, every request goes to it and nothing is asked.
 */
import type { BridgeLink } from './bridge-link.js';
import { namesOf } from './routing.js';

/** Largest /api/tags or /api/ps answer read (a few hundred models fit in far less). */
const MAX_LISTING_BYTES = 8 << 20;
export const LISTING_TIMEOUT_MS = 10_000;

/** GETs `path` through the link and parses its JSON; rejects with a message on any failure. */
export function fetchJson(link: BridgeLink, path: string, timeoutMs = LISTING_TIMEOUT_MS): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const stream = link.request({ ':method': 'GET', ':path': path, accept: 'application/json' }, { endStream: true });
    if (!stream) return reject(new Error(`computer ${link.name} is not connected`));
    const chunks: Buffer[] = [];
    let size = 0;
    let status = 0;
    const timer = setTimeout(() => {
      stream.close();
      reject(new Error(`computer ${link.name} did not answer ${path} within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    timer.unref();
    stream.on('error', () => undefined);
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_LISTING_BYTES) {
        stream.close();
        return;
      }
      chunks.push(c);
    });
    stream.on('close', () => {
      clearTimeout(timer);
      if (size > MAX_LISTING_BYTES) return reject(new Error(`computer ${link.name} answered ${path} with more than ${MAX_LISTING_BYTES} bytes`));
      if (status !== 200 || !stream.readableEnded) return reject(new Error(`computer ${link.name} answered ${path} with HTTP ${status || 'nothing'}`));
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new Error(`computer ${link.name} answered ${path} with something that is not JSON`));
      }
    });
  });
}

/** The `models` array of an /api/tags or /api/ps answer, or [] for anything else. */
export function modelsArray(answer: unknown): Array<Record<string, unknown>> {
  const models = (answer as { models?: unknown } | null)?.models;
  return Array.isArray(models) ? models.filter((m): m is Record<string, unknown> => typeof m === 'object' && m !== null) : [];
}

export class ModelCatalog {
  models: ReadonlySet<string> = new Set();
  loaded: Set<string> = new Set();
  /** Has been read since the link (re)connected. */
  private fresh = false;
  private pending: Promise<void> | undefined;

  constructor(private readonly link: BridgeLink) {
    // A reconnected computer may have other models: read again.
    link.on('connected', () => this.forget());
    link.on('disconnected', () => this.forget());
  }

  get known(): boolean {
    return this.fresh;
  }

  forget(): void {
    this.fresh = false;
    this.models = new Set();
    this.loaded = new Set();
  }

  /** Reads both lists now (one read at a time: a caller during a read shares it). */
  refresh(): Promise<void> {
    this.pending ??= (async () => {
      try {
        const [tags, ps] = await Promise.allSettled([fetchJson(this.link, '/api/tags'), fetchJson(this.link, '/api/ps')]);
        if (tags.status === 'fulfilled') this.takeTags(tags.value);
        if (ps.status === 'fulfilled') this.takePs(ps.value);
        // A computer that does not answer is not waited for again at every request: it has, as
        // far as routing knows, nothing until the next refresh.
        this.fresh = true;
      } finally {
        this.pending = undefined;
      }
    })();
    return this.pending;
  }

  /** Resolves once the lists of this connection are known (reads them if not yet). */
  ready(): Promise<void> {
    return this.fresh ? Promise.resolve() : this.refresh();
  }

  takeTags(answer: unknown): void {
    this.models = namesOf(modelsArray(answer));
  }

  takePs(answer: unknown): void {
    this.loaded = namesOf(modelsArray(answer));
  }
}
