import type { ElectionBackend } from '../../core/backend.js';
import type { MemoryStore } from './store.js';

interface Published {
  readonly token: string;
  readonly term: string;
  readonly value: string;
}

/** What each store's election leaders published, by key (kept apart from the store's locks). */
const published = new WeakMap<MemoryStore, Map<string, Published>>();

/**
 * Leader election on the memory backend: the election's lock is a lock of the store, and what
 * its holder publishes is kept next to it, valid only while that holder holds the lock.
 */
export const memoryElection: ElectionBackend<MemoryStore, undefined> = {
  async proclaim(lock, token, term, value) {
    const store = lock.client;
    if (store.get(lock.key) !== token) return false;
    let byKey = published.get(store);
    if (!byKey) published.set(store, (byKey = new Map()));
    byKey.set(lock.key, { token, term, value });
    return true;
  },
  async leader(lock) {
    const store = lock.client;
    const holder = store.get(lock.key);
    const byKey = published.get(store);
    if (holder === undefined) {
      byKey?.delete(lock.key);
      return null;
    }
    const record = byKey?.get(lock.key);
    if (record?.token !== holder) return { term: null, value: null };
    return { term: record.term, value: record.value };
  },
};
