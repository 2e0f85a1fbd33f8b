import type { ElectionBackend } from '../../core/backend.js';
import type { EtcdClient } from './client.js';
import type { Entry } from './queue.js';

/** The prefix of a lock's entries (as in index.ts): the election's candidates. */
const candidatesOf = (key: string) => `${key}\u001f`;

/**
 * The key of what the leader published: the election's key and a control character no name
 * holds, outside the candidates' prefix. One per election, overwritten by each new leader.
 */
const publishedOf = (key: string) => `${key}\u001d`;

/**
 * Leader election on etcd, its `concurrency.Election` recipe: each candidate puts an entry under
 * the election's prefix on its lease (the lock's acquire: Campaign), the entry with the smallest
 * create revision leads and that revision is its term; the leader publishes who it is on its own
 * lease, in a transaction that checks its entry is still there (Proclaim); resigning deletes the
 * entry, waking the next candidate, who watches it (Resign); `leader()` reads the first entry and
 * what it published (Observe, read).
 */
export const etcdElection: ElectionBackend<EtcdClient, Entry> = {
  async proclaim(lock, token, term, value, entry) {
    if (entry === undefined || entry.value !== token) return false;
    const put = lock.client
      .put(publishedOf(lock.key))
      .value(JSON.stringify({ token, term, value }));
    if (entry.lease !== undefined) put.lease(entry.lease);
    const { succeeded } = await lock.client
      .if(entry.key, 'Create', '==', entry.revision)
      .then(put)
      .commit();
    return succeeded;
  },
  async leader(lock) {
    const etcd = lock.client;
    const head = (
      await etcd.getAll().prefix(candidatesOf(lock.key)).sort('Create', 'Ascend').limit(1).exec()
    ).kvs[0];
    if (head === undefined) return null;
    const token = head.value.toString();
    const kv = (await etcd.get(publishedOf(lock.key)).exec()).kvs[0];
    let published: { token?: unknown; term?: unknown; value?: unknown } = {};
    try {
      published = kv ? (JSON.parse(kv.value.toString()) as typeof published) : {};
    } catch {
      published = {};
    }
    const value = published.token === token && typeof published.value === 'string';
    return { term: head.create_revision, value: value ? (published.value as string) : null };
  },
};
