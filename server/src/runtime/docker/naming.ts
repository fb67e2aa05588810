/**
 * Names and labels of the Docker objects the runtime owns. Everything is derived from the user's
 * hash (SHA-256 of the user id, 64 hex digits), never from the raw user id: container and network
 * names, labels and `docker ps` output are visible to anyone with access to the engine, and the
 * hash identifies a user's objects without revealing who the user is.
 *
 * Labels are how the runtime finds its objects again after a server restart (list, pruneOrphans)
 * and how the event watcher filters the engine's event stream.
 */

export const LABEL_TYPE = 'cloudtolocalllm.type';
export const LABEL_OWNER = 'cloudtolocalllm.owner';
/** On networks: the CIDR the subnet allocator gave it, so it can be released after a restart. */
export const LABEL_SUBNET = 'cloudtolocalllm.subnet';

export const TYPE_PROXY = 'streaming-proxy';
export const TYPE_NETWORK = 'user-network';

/** The filter values that select our objects in list/prune/event calls. */
export const PROXY_LABEL_FILTER = `${LABEL_TYPE}=${TYPE_PROXY}`;
export const NETWORK_LABEL_FILTER = `${LABEL_TYPE}=${TYPE_NETWORK}`;

const USER_HASH = /^[0-9a-f]{64}$/;

/**
 * Throws unless `hash` looks like userHash() output. Guards every name/label builder, so a raw
 * user id passed by mistake fails loudly instead of ending up in `docker ps`.
 */
export function assertUserHash(hash: string): void {
  if (!USER_HASH.test(hash)) {
    throw new Error('expected a user hash (64 lowercase hex digits, userHash(userId)), not a raw user id or other string');
  }
}

export function containerName(userHash: string): string {
  assertUserHash(userHash);
  return `ctll-proxy-${userHash}`;
}

export function networkName(userHash: string): string {
  assertUserHash(userHash);
  return `ctll-net-${userHash}`;
}

export function containerLabels(userHash: string): Record<string, string> {
  assertUserHash(userHash);
  return { [LABEL_TYPE]: TYPE_PROXY, [LABEL_OWNER]: userHash };
}

export function networkLabels(userHash: string, subnet: string): Record<string, string> {
  assertUserHash(userHash);
  return { [LABEL_TYPE]: TYPE_NETWORK, [LABEL_OWNER]: userHash, [LABEL_SUBNET]: subnet };
}

/** The owner label of a labelled object, if it is a well-formed hash (anything else is not ours). */
export function ownerOf(labels: Record<string, string> | undefined | null): string | undefined {
  const owner = labels?.[LABEL_OWNER];
  return owner !== undefined && USER_HASH.test(owner) ? owner : undefined;
}
