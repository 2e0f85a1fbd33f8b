/**
 * Inspection for the Memcached backend: the holder is the item's value. No fencing token: the
 * name's counter is incremented by every attempt (the add and the increment go out together), so
 * it is not the holder's token. Memcached's
 * binary protocol does not tell an item's remaining TTL, nor can it list keys without a blocking
 * dump of its slabs: `ttl` is unknown (`null`) and `list` is not offered.
 */
import type { InspectionBackend, LockTarget, StoredLock } from '../../core/backend.js';
import { deleteIfUnchanged, gets, type MemjsClient } from './protocol.js';

async function read(lock: LockTarget): Promise<{ stored: StoredLock; cas: Buffer } | null> {
  const item = await gets(lock.client as MemjsClient, lock.key);
  return item ? { stored: { owner: item.value }, cas: item.cas } : null;
}

/** The Memcached backend's inspection primitives (no `list`). */
export function memcachedInspection(): InspectionBackend {
  return {
    async inspect(lock) {
      return (await read(lock))?.stored ?? null;
    },
    async forceRelease(lock) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const found = await read(lock);
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
