/**
 * The user's key in everything the cloud side names, labels, counts or logs: SHA-256 of the
 * user id (the JWT's `sub`), 64 hex digits. Collision-free, and it does not say who the user is.
 *
 * The two kinds of user key are kept apart by their types: a UserHash is branded, so a raw id
 * (a plain string) cannot be passed where a hash is expected, and a parameter typed
 * UserId<T> refuses a UserHash, so a hash cannot be hashed again or taken for an id.
 */
import { createHash } from 'node:crypto';

declare const brand: unique symbol;

/** userHash(userId): the only form of a user's id the cloud side names, labels, counts or logs. */
export type UserHash = string & { readonly [brand]: 'UserHash' };

/** A raw user id (the JWT's `sub`): any string that is not a UserHash. */
export type UserId<T extends string> = T extends UserHash ? never : T;

/** 64 lowercase hex digits: what userHash() makes. */
export const USER_HASH_PATTERN = /^[0-9a-f]{64}$/;

export function userHash<T extends string>(userId: UserId<T>): UserHash {
  return createHash('sha256').update(userId, 'utf8').digest('hex') as UserHash;
}

/** True for a string of userHash()'s form, such as one read back from a label the runtime set. */
export function isUserHash(value: string): value is UserHash {
  return USER_HASH_PATTERN.test(value);
}
