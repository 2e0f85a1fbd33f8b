import type { EtcdClient } from './client.js';
import { giveLease, revoke } from './leases.js';

/**
 * The queue recipe of etcd's own `concurrency.Mutex`: each acquirer puts an entry under the
 * lock's prefix; the entry with the smallest create revision holds the lock, and that revision
 * is its fencing token; a waiter watches only the entry right ahead of it.
 */

/** One entry of a lock's line on the server. */
export interface Entry {
  /** The entry's key, under the lock's prefix (relative to the client's namespace). */
  readonly key: string;
  /** Its value: the owner token of the attempt that made it (compared on release and extend). */
  readonly value: string;
  /** Its create revision: its place in line, and the fencing token once it holds the lock. */
  readonly revision: string;
  /** Its lease, if any, and the lease's TTL in seconds. */
  lease: string | undefined;
  seconds: number | null;
  /** When its lease was last granted or kept alive (before the request was sent). */
  refreshedAt: number;
}

/**
 * Puts a new entry (with its lease) and tells whether it is `first` in line: among the first
 * `limit` entries (1 for a lock; a semaphore's limit).
 */
export async function enter(
  etcd: EtcdClient,
  prefix: string,
  token: string,
  lease: { id: string; seconds: number } | undefined,
  refreshedAt: number,
  limit = 1,
): Promise<{ entry: Entry; first: boolean }> {
  const key = prefix + token;
  const put = etcd.put(key).value(token);
  if (lease !== undefined) put.lease(lease.id);
  const { header, responses, succeeded } = await etcd
    .if(key, 'Create', '==', 0)
    .then(put, etcd.getAll().prefix(prefix).sort('Create', 'Ascend').limit(limit))
    .commit();
  if (!succeeded) {
    // The key exists: this very request was applied once already and sent again by the client
    // after a lost reply (etcd3 retries on another member). Its revision is unknown here: read it.
    const kv = (await etcd.get(key).exec()).kvs[0];
    if (kv === undefined || kv.value.toString() !== token) {
      throw new Error(`etcd: the lock entry ${JSON.stringify(key)} vanished while it was put`);
    }
    const entry: Entry = {
      key,
      value: token,
      revision: kv.create_revision,
      lease: lease?.id,
      seconds: lease?.seconds ?? null,
      refreshedAt,
    };
    const head = (await etcd.getAll().prefix(prefix).sort('Create', 'Ascend').limit(limit).exec())
      .kvs;
    return { entry, first: head.some((each) => each.create_revision === kv.create_revision) };
  }
  const entry: Entry = {
    key,
    value: token,
    revision: header.revision,
    lease: lease?.id,
    seconds: lease?.seconds ?? null,
    refreshedAt,
  };
  const head = responses[1]?.response_range?.kvs ?? [];
  const first = head.some((each) => each.create_revision === header.revision);
  return { entry, first };
}

/** The entry right ahead of `entry` in line (as of now), how many are ahead, and the revision read. */
export async function ahead(
  etcd: EtcdClient,
  prefix: string,
  entry: Entry,
): Promise<{ key: string; fromRevision: string; count: number } | undefined> {
  const found = await etcd
    .getAll()
    .prefix(prefix)
    .maxCreateRevision(String(BigInt(entry.revision) - 1n))
    .sort('Create', 'Descend')
    .limit(1)
    .exec();
  const predecessor = found.kvs[0];
  if (predecessor === undefined) return undefined;
  return {
    key: prefix + predecessor.value.toString(),
    fromRevision: String(BigInt(found.header.revision) + 1n),
    count: Number(found.count),
  };
}

/**
 * Like `ahead`, but `count` is exact: the number of entries ahead of `entry` as of the revision
 * read (etcd's own `count` ignores the create-revision filter, so they are read, all of them).
 * For a semaphore's line, whose waiters count the entries ahead down to below the limit.
 */
export async function countAhead(
  etcd: EtcdClient,
  prefix: string,
  entry: Entry,
): Promise<{ key: string; fromRevision: string; count: number } | undefined> {
  const found = await etcd
    .getAll()
    .prefix(prefix)
    .maxCreateRevision(String(BigInt(entry.revision) - 1n))
    .sort('Create', 'Descend')
    .exec();
  const predecessor = found.kvs[0];
  if (predecessor === undefined) return undefined;
  return {
    key: prefix + predecessor.value.toString(),
    fromRevision: String(BigInt(found.header.revision) + 1n),
    count: found.kvs.length,
  };
}

/**
 * Deletes an entry if it still holds its value. Only when this delete succeeded is the entry's
 * lease (now attached to no key) given back to the pool for reuse, or revoked in the background:
 * an entry deleted by someone else had its lease seen to by them, or ran out with it. A lease is
 * never revoked on a failed request either (it may have been applied, and the lease reused since):
 * it runs out on its own.
 */
export async function remove(
  etcd: EtcdClient,
  entry: Pick<Entry, 'key' | 'value' | 'lease' | 'seconds'>,
  reuse = false,
): Promise<boolean> {
  const { succeeded } = await etcd
    .if(entry.key, 'Value', '==', entry.value)
    .then(etcd.delete().key(entry.key))
    .commit();
  if (!succeeded) return false;
  if (reuse && entry.lease !== undefined && entry.seconds !== null) {
    giveLease(etcd, entry.lease, entry.seconds);
  } else {
    revoke(etcd, entry.lease);
  }
  return true;
}

/** Removes a waiting entry in the background (it runs out with its lease if this fails). */
export function leave(etcd: EtcdClient, entry: Entry): void {
  remove(etcd, entry).catch(() => undefined);
}
