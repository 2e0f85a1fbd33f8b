/**
 * Inspection for the Memcached backend: the holder is the item's value; the fencing token is the
 * name's counter (the last token issued, which is the holder's while it holds). Memcached's
 * binary protocol does not tell an item's remaining TTL, nor can it list keys without a blocking
 * dump of its slabs: `ttl` is unknown (`null`) and `list` is not offered.
 */
import type { InspectionBackend, LockTarget, StoredLock } from '../../core/backend.js';
import { deleteIfUnchanged, gets, type MemjsClient } from './protocol.js';

async function read(
  lock: LockTarget,
  fenceKey: string,
): Promise<{ stored: StoredLock; cas: Buffer } | null> {
  const client = lock.client as MemjsClient;
  const item = await gets(client, lock.key);
  if (!item) return null;
  const fence = await gets(client, fenceKey).catch(() => null);
  const token = fence?.value.trim();
  return {
    stored: {
      owner: item.value,
      ...(token && /^\d+$/u.test(token) ? { fencingToken: token } : {}),
    },
    cas: item.cas,
  };
}

/** The Memcached backend's inspection primitives (no `list`). */
export function memcachedInspection(fenceKeyOf: (key: string) => string): InspectionBackend {
  return {
    async inspect(lock) {
      return (await read(lock, fenceKeyOf(lock.key)))?.stored ?? null;
    },
    async forceRelease(lock) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const found = await read(lock, fenceKeyOf(lock.key));
        if (!found) return null;
        // The CAS value makes it delete only the item read (not one a new holder just added).
        if (await deleteIfUnchanged(lock.client as MemjsClient, lock.key, found.cas)) {
          return found.stored;
        }
      }
      throw new Error('the lock changed hands 5 times while it was being force-released');
    },
  };
}
