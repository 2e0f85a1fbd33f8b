/**
 * Inspection for the etcd backend. A lock is a line of entries `key \u001f token` on leases; the
 * entry with the smallest create revision holds it (its revision is the fencing token), the
 * others wait. Inspect reads the head of the line and the count; list is one range read on the
 * namespace's prefix; force-release deletes the head entry if it is still the same one, which
 * wakes the waiter watching it.
 */
import type { InspectionBackend, ListedLock, LockTarget, StoredLock } from '../../core/backend.js';
import type { EtcdClient } from './client.js';

/** What the backend reads beyond `EtcdClient` (etcd3's `Namespace` has both). */
interface InspectingClient extends EtcdClient {
  readonly leaseClient: EtcdClient['leaseClient'] & {
    leaseTimeToLive(request: { ID: string }): Promise<{ TTL: string }>;
  };
}

interface Entry {
  readonly key: { toString(): string };
  readonly value: { toString(): string };
  readonly create_revision: string;
  readonly lease: string;
}

const SEPARATOR = '\u001f';

/** The TTL left of `lease` in ms (-1: no lease, the entry never expires). */
async function ttlOf(etcd: InspectingClient, lease: string): Promise<number> {
  if (lease === '0' || lease === '') return -1;
  const { TTL } = await etcd.leaseClient.leaseTimeToLive({ ID: lease });
  const seconds = Number(TTL);
  return seconds < 0 ? 0 : seconds * 1000;
}

async function stored(etcd: InspectingClient, head: Entry, waiting: number): Promise<StoredLock> {
  return {
    owner: head.value.toString(),
    ttl: await ttlOf(etcd, head.lease),
    fencingToken: head.create_revision,
    waiting,
  };
}

/** The head of `key`'s line and how many entries follow it, or `null` when free. */
async function readLine(
  etcd: InspectingClient,
  key: string,
): Promise<{ head: Entry; waiting: number } | null> {
  const reply = await etcd
    .getAll()
    .prefix(`${key}${SEPARATOR}`)
    .sort('Create', 'Ascend')
    .limit(1)
    .exec();
  const head = reply.kvs[0] as Entry | undefined;
  if (!head) return null;
  return { head, waiting: Math.max(0, Number(reply.count) - 1) };
}

/** The etcd backend's inspection primitives. */
export const etcdInspection: InspectionBackend<EtcdClient> = {
  async inspect(lock) {
    const etcd = lock.client as InspectingClient;
    const line = await readLine(etcd, lock.key);
    return line ? stored(etcd, line.head, line.waiting) : null;
  },

  async list(target) {
    const etcd = target.client as InspectingClient;
    const base = target.namespace === null ? '' : `${target.namespace}/`;
    // One range read of the entries under the prefix, oldest first: the first entry of each
    // lock's line is its holder. Bounded: at most 50 entries per lock asked for.
    const reply = await etcd
      .getAll()
      .prefix(`${base}${target.prefix}`)
      .sort('Create', 'Ascend')
      .limit(target.limit * 50)
      .exec();
    const lines = new Map<string, { head: Entry; count: number }>();
    for (const kv of reply.kvs as unknown as Entry[]) {
      const full = kv.key.toString();
      const at = full.indexOf(SEPARATOR);
      if (at < 0) continue; // a semaphore's entry (another separator) or a key of the user's
      const key = full.slice(0, at);
      const line = lines.get(key);
      if (line) line.count++;
      else lines.set(key, { head: kv, count: 1 });
    }
    const listed: ListedLock[] = [];
    for (const [key, { head, count }] of lines) {
      if (listed.length >= target.limit) break;
      const name = key.slice(base.length);
      if (name.length === 0 || key.slice(0, base.length) !== base) continue;
      listed.push({ name, key, ...(await stored(etcd, head, count - 1)) });
    }
    return listed;
  },

  async forceRelease(lock: LockTarget<EtcdClient>) {
    const etcd = lock.client as InspectingClient;
    for (let attempt = 0; attempt < 5; attempt++) {
      const line = await readLine(etcd, lock.key);
      if (!line) return null;
      const found = await stored(etcd, line.head, line.waiting);
      const headKey = line.head.key.toString();
      // Deleted only if it is still the same entry (not one put again under the same key).
      const { succeeded } = await etcd
        .if(headKey, 'Create', '==', line.head.create_revision)
        .then(etcd.delete().key(headKey))
        .commit();
      if (succeeded) return found;
    }
    throw new Error('the lock changed hands 5 times while it was being force-released');
  },
};
