/**
 * The user's key in everything the cloud side names, labels, counts or logs: SHA-256 of the
 * user id (the JWT's `sub`), 64 hex digits. Collision-free, and it does not say who the user is.
 */
import { createHash } from 'node:crypto';

export function userHash(userId: string): string {
  return createHash('sha256').update(userId, 'utf8').digest('hex');
}
