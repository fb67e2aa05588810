/**
 * Sends an authenticated request to one of the user's connected computers, or answers it from
 * all of them (issue 10). With one computer everything goes to it, streamed as it comes: the
 * path of a single computer is what it always was. With several: listings are their union, a
 * request naming a model goes where routing.ts says, model management needs a pinned computer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MACHINE_HEADER } from '@cloudtolocalllm/bridge/connection/protocol';
import { TokenTally } from '@cloudtolocalllm/bridge/connection/token-tally';
import type { BridgeLinks, Computer } from './bridge-links.js';
import { fetchJson, modelsArray } from './model-catalog.js';
import { sendOllamaError } from './ollama-errors.js';
import type { Relay } from './relay.js';
import { canonicalModelName, classify, modelOfBody, pickAny, pickForModel, unionOpenAiModels, unionPs, unionTags } from './routing.js';

/**
 * Largest body read to find its model: chats with a few images fit. A larger one can still be
 * sent, streamed, to a pinned computer.
 */
export const MAX_ROUTED_BODY_BYTES = 32 << 20;

export const PIN_HINT = `pin one with the header ${headerName(MACHINE_HEADER)}: NAME`;

function headerName(lower: string): string {
  return lower.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase()).replace('Cloudtolocalllm', 'CloudToLocalLLM');
}

function listNames(computers: readonly Computer[]): string {
  return computers.map((c) => c.name).join(', ');
}

/** Reads a request body up to `limit` bytes; undefined when over it or the client left. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large' | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        resolve('too-large');
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(undefined));
    req.on('close', () => {
      if (!req.complete) resolve(undefined);
    });
  });
}

/** What the caller's credential brings to the dispatch (a client key; nothing for a sign-in token). */
export interface Access {
  /** Headers for the bridge of the computer that serves the request (the key's id, and its scope there). */
  own?(computer: Computer): Record<string, string>;
  /** The key's model allow-list: a union listing shows only these. */
  models?: readonly string[];
  /**
   * Which computer served the request, with its bridge's trailers once the answer is complete;
   * undefined: the proxy answered from several computers (a union listing).
   */
  served?(computer: Computer | undefined, trailers: Record<string, unknown>): void;
  /**
   * A computer whose answers the proxy counts itself as it relays them, because a cut answer
   * (the computer left midway) brings no trailer: `cut` then gets the tokens relayed. Only where
   * the usage goes elsewhere (a key served by a computer that is not its own).
   */
  countsRelayed?(computer: Computer): boolean;
  cut?(relayed: { tokensIn: number; tokensOut: number }): void;
}

export class Dispatcher {
  /** Counts routed requests: whose turn it is among equally busy computers. */
  private turn = 0;

  constructor(
    private readonly links: BridgeLinks,
    private readonly relay: Relay,
  ) {}

  /**
   * `pool`: the connected computers this caller may reach (all of them, or those whose key set
   * holds the caller's client key). `access`: what a client key adds (key-access.ts).
   */
  async handle(req: IncomingMessage, res: ServerResponse, pool: readonly Computer[], access: Access = {}): Promise<void> {
    const all = this.links.list();
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = classify(method, path);
    const pinned = req.headers[MACHINE_HEADER];
    if (pinned !== undefined) {
      const name = String(pinned);
      const computer = all.find((c) => c.name === name);
      if (!computer) {
        req.resume();
        const connected = all.length ? `connected: ${listNames(all)}` : 'none is connected';
        return sendOllamaError(res, 'unknown-machine', `no computer named "${name.slice(0, 64)}" is connected to this endpoint (${connected})`);
      }
      if (!pool.includes(computer)) {
        req.resume();
        return sendOllamaError(res, 'key-invalid', `the key is not valid on computer ${computer.name} (it is valid on: ${listNames(pool) || 'none of them'})`, {
          'www-authenticate': `Bearer realm="CloudToLocalLLM", error="invalid_token"`,
        });
      }
      return this.relayTo(req, res, computer, access, route.kind === 'management');
    }
    // One computer (or one this key may reach): everything goes to it, streamed.
    if (all.length <= 1 || (pool.length === 1 && route.kind !== 'management')) return this.relayTo(req, res, pool[0], access, false);
    if (route.kind === 'management') {
      req.resume();
      return sendOllamaError(res, 'machine-required', `model management goes to one computer, and ${all.length} are connected (${listNames(all)}): ${PIN_HINT}`);
    }
    if (route.kind === 'union') {
      await this.union(req, res, pool, route.what, access.models);
      if (res.statusCode === 200) access.served?.(undefined, {});
      return;
    }
    if (route.kind === 'any') return this.relayTo(req, res, pickAny(pool.map(candidateOf))?.computer, access, false);
    let body: Buffer | undefined;
    let model = route.fromPath;
    if (model === undefined) {
      const read = await readBody(req, MAX_ROUTED_BODY_BYTES);
      if (read === undefined) return void res.destroy();
      if (read === 'too-large') {
        return sendOllamaError(res, 'body-too-large', `a request body over ${MAX_ROUTED_BODY_BYTES} bytes cannot be routed by its model; ${PIN_HINT}`);
      }
      body = read;
      model = modelOfBody(read);
    }
    // No model named: Ollama's own answer (400) says what is missing.
    if (model === undefined) return this.relayTo(req, res, pickAny(pool.map(candidateOf))?.computer, access, false, body);
    let computer = await this.pick(pool, model);
    // A model pulled on a computer directly since the last read: read once more before a 404.
    if (!computer) {
      await Promise.all(pool.map((c) => c.catalog.refresh()));
      computer = await this.pick(pool, model, false);
    }
    if (!computer) {
      return sendOllamaError(res, 'model-not-found', `model '${model.slice(0, 200)}' not found on any of your connected computers (asked: ${listNames(pool)})`);
    }
    const name = canonicalModelName(model);
    const served = computer;
    this.relayTo(req, res, served, access, false, body, (status) => {
      // Ollama has the model in memory once it answers: later requests prefer this computer.
      if (status === 200) served.catalog.loaded.add(name);
    });
  }

  private async pick(pool: readonly Computer[], model: string, wait = true): Promise<Computer | undefined> {
    if (wait) await Promise.all(pool.map((c) => c.catalog.ready()));
    const candidates = pool.filter((c) => c.link.connected).map(candidateOf);
    return pickForModel(candidates, model, this.turn++)?.computer;
  }

  private relayTo(
    req: IncomingMessage,
    res: ServerResponse,
    computer: Computer | undefined,
    access: Access,
    management: boolean,
    body?: Buffer,
    onHead?: (status: number) => void,
  ): void {
    const tally = computer && access.cut && access.countsRelayed?.(computer) ? new TokenTally() : undefined;
    this.relay.handle(req, res, computer?.link, computer && access.own ? access.own(computer) : {}, body, {
      ...(access.served && computer ? { onTrailers: (trailers) => access.served!(computer, trailers) } : {}),
      ...(tally && computer
        ? {
            tally,
            onCut: () => {
              tally.end();
              access.cut!({ tokensIn: tally.tokensIn, tokensOut: tally.tokensOut });
            },
          }
        : {}),
      onHead: (status) => {
        onHead?.(status);
        // What a pull, create, copy or delete changed: read that computer's models again once it is done.
        if (management && computer && this.links.list().length > 1) res.once('close', () => void computer.catalog.refresh());
      },
    });
  }

  private async union(req: IncomingMessage, res: ServerResponse, pool: readonly Computer[], what: 'tags' | 'ps' | 'openai-models', models?: readonly string[]): Promise<void> {
    req.resume();
    const path = what === 'tags' ? '/api/tags' : what === 'ps' ? '/api/ps' : '/v1/models';
    const answers = await Promise.allSettled(pool.map((c) => fetchJson(c.link, path)));
    const got: unknown[] = [];
    answers.forEach((a, i) => {
      if (a.status !== 'fulfilled') return;
      got.push(a.value);
      const catalog = pool[i]!.catalog;
      if (what === 'tags') catalog.takeTags(a.value);
      if (what === 'ps') catalog.takePs(a.value);
    });
    if (got.length === 0) {
      const why = answers.map((a) => (a.status === 'rejected' ? (a.reason as Error).message : '')).filter(Boolean).join('; ');
      return sendOllamaError(res, 'upstream-reset', `none of your computers answered ${path}: ${why}`);
    }
    // The computers were asked as the proxy (no key): a key's model list is applied here.
    const allowed = models ? new Set(models.map(canonicalModelName)) : undefined;
    const shown = <T>(list: T[], name: (e: T) => unknown): T[] => (allowed ? list.filter((e) => typeof name(e) === 'string' && allowed.has(canonicalModelName(name(e) as string))) : list);
    const modelName = (e: Record<string, unknown>): unknown => e['model'] ?? e['name'];
    let answer: unknown;
    if (what === 'tags') answer = { models: shown(unionTags(got.map(modelsArray)), modelName) };
    else if (what === 'ps') answer = { models: shown(unionPs(got.map(modelsArray)), modelName) };
    else {
      const data = got.map((g) => {
        const d = (g as { data?: unknown } | null)?.data;
        return Array.isArray(d) ? (d.filter((e) => typeof e === 'object' && e !== null) as Array<{ id?: unknown; created?: unknown }>) : [];
      });
      answer = { object: 'list', data: shown(unionOpenAiModels(data), (e) => e.id) };
    }
    const text = JSON.stringify(answer);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
  }
}

function candidateOf(c: Computer): { name: string; models: ReadonlySet<string>; loaded: ReadonlySet<string>; inFlight: number; computer: Computer } {
  return { name: c.name, models: c.catalog.models, loaded: c.catalog.loaded, inFlight: c.link.inFlight, computer: c };
}
