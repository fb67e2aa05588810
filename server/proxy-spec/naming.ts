/**
 * Names and labels of the Docker objects the runtime owns. Everything is derived from the user's
 * hash (SHA-256 of the user id, 64 hex digits), never from the raw user id: container and network
 * names, labels and `docker ps` output are visible to anyone with access to the engine, and the
 * hash identifies a user's objects without revealing who the user is.
 *
 * Labels are how the runtime finds its objects again after a server restart (list, pruneOrphans)
 * and how the event watcher filters the engine's event stream.
 *
 * Stacks: several cloud servers may share one engine (two deployments, a rolling restart with
 * overlap, a test or benchmark next to production). Each one with a stack name (CTLL_STACK_NAME)
 * labels its objects `cloudtolocalllm.stack=<name>`, puts the name into their names (so the same
 * user served by two stacks gets two proxies, not one fought over), and sees, adopts and prunes
 * only objects of its own stack. A server without a stack name owns only unlabelled objects.
 */

import { isUserHash, type UserHash } from './user-hash.js';

export const LABEL_TYPE = 'cloudtolocalllm.type';
export const LABEL_OWNER = 'cloudtolocalllm.owner';
/** On networks: the CIDR the subnet allocator gave it, so it can be released after a restart. */
export const LABEL_SUBNET = 'cloudtolocalllm.subnet';
/** Which server deployment (stack) created the object; absent for a server without a stack name. */
export const LABEL_STACK = 'cloudtolocalllm.stack';
/**
 * On a proxy started ahead of its user (a spare, DockerRuntime option `spares`): the server that
 * keeps it. Such a proxy is made for a random id in place of a user hash; the user who takes it
 * gets it renamed to their name, so its name, not its owner label, says whose it is.
 */
export const LABEL_SPARE = 'cloudtolocalllm.spare';

export const TYPE_PROXY = 'streaming-proxy';
export const TYPE_NETWORK = 'user-network';

/** The filter values that select our objects in list/prune/event calls. */
export const PROXY_LABEL_FILTER = `${LABEL_TYPE}=${TYPE_PROXY}`;
export const NETWORK_LABEL_FILTER = `${LABEL_TYPE}=${TYPE_NETWORK}`;

const STACK_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

/** Throws unless `stack` is a usable stack name (it goes into container and network names). */
export function assertStackName(stack: string | undefined): void {
  if (stack !== undefined && !STACK_NAME.test(stack)) {
    throw new Error(`the stack name (CTLL_STACK_NAME) "${stack}" must be 1 to 63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
}

/**
 * Throws unless `hash` looks like userHash() output. Guards every name/label builder, so a raw
 * user id passed by mistake fails loudly instead of ending up in `docker ps`.
 */
export function assertUserHash(hash: string): asserts hash is UserHash {
  if (!isUserHash(hash)) {
    throw new Error('expected a user hash (64 lowercase hex digits, userHash(userId)), not a raw user id or other string');
  }
}

/** What every name of a stack starts with: `ctll-`, or `ctll-<stack>-`. */
function scopePrefix(stack: string | undefined): string {
  assertStackName(stack);
  return stack === undefined ? 'ctll-' : `ctll-${stack}-`;
}

function scopedName(kind: 'proxy' | 'net', userHash: string, stack: string | undefined): string {
  assertUserHash(userHash);
  return `${scopePrefix(stack)}${kind}-${userHash}`;
}

/** `ctll-proxy-<hash>`, or `ctll-<stack>-proxy-<hash>` for a stack. */
export function containerName(userHash: string, stack?: string): string {
  return scopedName('proxy', userHash, stack);
}

/** `ctll-net-<hash>`, or `ctll-<stack>-net-<hash>` for a stack. */
export function networkName(userHash: string, stack?: string): string {
  return scopedName('net', userHash, stack);
}

/** Matches exactly the names of one stack's containers or networks (for the Docker API filter). */
export function namePattern(kind: 'proxy' | 'net', stack?: string): RegExp {
  // A stack name's only regex character is '.'.
  // eslint-disable-next-line security/detect-non-literal-regexp -- built from a stack name assertStackName() allows ([a-z0-9_.-]), '.' escaped
  return new RegExp(`^${scopePrefix(stack).replace(/\./g, '\\.')}${kind}-[0-9a-f]{64}$`);
}

function stackLabel(stack: string | undefined): Record<string, string> {
  assertStackName(stack);
  return stack === undefined ? {} : { [LABEL_STACK]: stack };
}

export function containerLabels(userHash: string, stack?: string, spareOf?: string): Record<string, string> {
  assertUserHash(userHash);
  return { [LABEL_TYPE]: TYPE_PROXY, [LABEL_OWNER]: userHash, ...stackLabel(stack), ...(spareOf === undefined ? {} : { [LABEL_SPARE]: spareOf }) };
}

export function networkLabels(userHash: string, subnet: string, stack?: string): Record<string, string> {
  assertUserHash(userHash);
  return { [LABEL_TYPE]: TYPE_NETWORK, [LABEL_OWNER]: userHash, [LABEL_SUBNET]: subnet, ...stackLabel(stack) };
}

/** Label filters selecting one stack's proxies or networks (the engine cannot filter on a label's absence: see inStack). */
export function labelFilters(type: 'proxy' | 'network', stack?: string): string[] {
  return [type === 'proxy' ? PROXY_LABEL_FILTER : NETWORK_LABEL_FILTER, ...(stack === undefined ? [] : [`${LABEL_STACK}=${stack}`])];
}

/** Does an object with these labels belong to this stack? Without a stack: only objects without one. */
export function inStack(labels: Record<string, string> | undefined | null, stack: string | undefined): boolean {
  return labels?.[LABEL_STACK] === stack;
}

/** The owner label of a labelled object, if it is a well-formed hash (anything else is not ours). */
/**
 * Whose proxy a container is: the hash in its name (containerName), which a spare's takes when a
 * user claims it; undefined for a name of another kind or stack.
 */
export function ownerOfName(name: string | undefined, stack?: string): UserHash | undefined {
  const bare = name?.replace(/^\//, '');
  if (!bare || !namePattern('proxy', stack).test(bare)) return undefined;
  const hash = bare.slice(-64);
  return isUserHash(hash) ? hash : undefined;
}

/** A spare no user has claimed yet: made as one, and still under the name it was made with. */
export function isUnclaimedSpare(name: string | undefined, labels: Record<string, string> | undefined | null, stack?: string): boolean {
  return labels?.[LABEL_SPARE] !== undefined && ownerOfName(name, stack) === ownerOf(labels);
}

export function ownerOf(labels: Record<string, string> | undefined | null): UserHash | undefined {
  const owner = labels?.[LABEL_OWNER];
  return owner !== undefined && isUserHash(owner) ? owner : undefined;
}
