import type {
  AttemptOutcome,
  HandOff,
  ReadWriteBackend,
  ReadWriteTarget,
} from '../../core/backend.js';
import { now } from '../../core/timing.js';
import type { EtcdClient } from './client.js';
import { takeLease } from './leases.js';
import { type Entry, leave, remove } from './queue.js';

/**
 * The etcd read-write lock: the recipe of etcd's `client/v3/experimental/recipes/rwmutex.go`.
 * Each acquirer puts an entry `key` + `\u001d` + `r`|`w` + owner token (its value: `r`|`w` +
 * token) on a lease; a reader holds once no **writer** entry has a smaller create revision, a
 * writer once no entry at all has. So the line is first come, first served: a reader arriving
 * after a waiting writer waits for it (writers never starve), readers next to each other in line
 * hold together. The entry's create revision is the fencing token. A blocking acquire keeps its
 * entry and watches the one entry in its way; a dead holder's or waiter's entry goes with its
 * lease, at the server.
 */

/** The prefix of a read-write lock's entries (no lock's or semaphore's prefix starts with it). */
export const readWritePrefixOf = (key: string) => `${key}\u001d`;

/** What the etcd backend lends the read-write lock (its lock's helpers). */
export interface EtcdLineHelpers<W extends EtcdReadWriteWaiter> {
  /** The lease TTL for `expire`, in whole seconds (null: none). */
  leaseSeconds(expire: number | null): number | null;
  /** The lease of a waiting entry when the holding has no expiry. */
  readonly waiterLeaseSeconds: number;
  /** How often a waiting entry's lease must be kept alive (ms). */
  refreshEvery(entry: Entry): number;
  /** Keeps the entry's lease alive; false if it is gone. */
  refresh(etcd: EtcdClient, entry: Entry): Promise<boolean>;
  /** The entry holds: the granted outcome (or undefined if it vanished). */
  grant(
    etcd: EtcdClient,
    expire: number | null,
    entry: Entry,
  ): Promise<AttemptOutcome<Entry> | undefined>;
  /** Extends the holding to `ttl` ms. */
  extend(etcd: EtcdClient, ttl: number, entry: Entry | undefined): Promise<boolean>;
  /** The lock's hand-off: watches `waiter.ahead`, leaves the line on close. */
  readonly handOff: HandOff<EtcdClient, W, ReadWriteTarget<EtcdClient>>;
}

/** The part of the etcd waiter the read-write lock uses. */
export interface EtcdReadWriteWaiter {
  readonly wake: () => void;
  entry?: Entry | undefined;
  ahead?: { key: string; fromRevision: string; count: number } | undefined;
  closed: boolean;
}

const etcdOf = (rw: ReadWriteTarget) => rw.client as EtcdClient;
const letter = (rw: ReadWriteTarget) => (rw.mode === 'read' ? 'r' : 'w');

/** Puts a new entry for `value` with its lease (or none), idempotently. */
async function put(
  etcd: EtcdClient,
  prefix: string,
  value: string,
  seconds: number | null,
): Promise<Entry> {
  const refreshedAt = now();
  const lease = seconds === null ? undefined : await takeLease(etcd, seconds);
  const key = prefix + value;
  const request = etcd.put(key).value(value);
  if (lease !== undefined) request.lease(lease);
  const { header, succeeded } = await etcd.if(key, 'Create', '==', 0).then(request).commit();
  let revision = header.revision;
  if (!succeeded) {
    // Applied once already and sent again after a lost reply: read its revision.
    const kv = (await etcd.get(key).exec()).kvs[0];
    if (kv === undefined || kv.value.toString() !== value) {
      throw new Error(`etcd: the lock entry ${JSON.stringify(key)} vanished while it was put`);
    }
    revision = kv.create_revision;
  }
  return { key, value, revision, lease, seconds, refreshedAt };
}

/**
 * The entry in the way of `entry` (the last writer before a reader; the last entry of any kind
 * before a writer), with the revision read, or undefined: it holds.
 */
async function inTheWay(
  etcd: EtcdClient,
  prefix: string,
  mode: 'r' | 'w',
  entry: Entry,
): Promise<{ key: string; fromRevision: string; count: number } | undefined> {
  const found = await etcd
    .getAll()
    .prefix(mode === 'r' ? `${prefix}w` : prefix)
    .maxCreateRevision(String(BigInt(entry.revision) - 1n))
    .sort('Create', 'Descend')
    .limit(1)
    .exec();
  const last = found.kvs[0];
  if (last === undefined) return undefined;
  return {
    key: prefix + last.value.toString(),
    fromRevision: String(BigInt(found.header.revision) + 1n),
    count: Number(found.count),
  };
}

/** The read-write primitives of the etcd backend, over its lock's helpers. */
export function etcdReadWrite<W extends EtcdReadWriteWaiter>(
  helpers: EtcdLineHelpers<W>,
): ReadWriteBackend<EtcdClient, Entry, W> {
  /** The waiter's entry is gone (its lease ran out): it queues again from the back. */
  const lostPlace = (etcd: EtcdClient, waiter: W): false => {
    const entry = waiter.entry;
    waiter.entry = undefined;
    waiter.ahead = undefined;
    if (entry) leave(etcd, entry);
    return false;
  };

  return {
    async acquire(rw, token, waiter) {
      const etcd = etcdOf(rw);
      const prefix = readWritePrefixOf(rw.key);
      const mode = letter(rw);
      const value = mode + token;
      if (waiter === undefined) {
        // Not waiting: hold if nothing is in the way, else leave at once.
        const entry = await put(etcd, prefix, value, helpers.leaseSeconds(rw.expire));
        if ((await inTheWay(etcd, prefix, mode, entry)) === undefined) {
          return (await helpers.grant(etcd, rw.expire, entry)) ?? false;
        }
        await remove(etcd, entry);
        return false;
      }
      let entry = waiter.entry;
      if (entry === undefined) {
        const seconds = helpers.leaseSeconds(rw.expire) ?? helpers.waiterLeaseSeconds;
        const made = await put(etcd, prefix, value, seconds);
        if (waiter.closed) {
          await remove(etcd, made);
          return false;
        }
        waiter.entry = entry = made;
      } else if (
        now() - entry.refreshedAt >= helpers.refreshEvery(entry) &&
        !(await helpers.refresh(etcd, entry))
      ) {
        return lostPlace(etcd, waiter);
      }
      const blocker = await inTheWay(etcd, prefix, mode, entry);
      if (blocker === undefined) {
        if (
          now() - entry.refreshedAt > helpers.refreshEvery(entry) / 30 &&
          !(await helpers.refresh(etcd, entry))
        ) {
          return lostPlace(etcd, waiter);
        }
        waiter.entry = undefined;
        waiter.ahead = undefined;
        return (await helpers.grant(etcd, rw.expire, entry)) ?? lostPlace(etcd, waiter);
      }
      waiter.ahead = blocker;
      return {
        granted: false,
        position: Math.max(0, blocker.count - 1),
        renewWithin: Math.max(0, entry.refreshedAt + helpers.refreshEvery(entry) - now()),
      };
    },

    async release(rw, token, entry) {
      const etcd = etcdOf(rw);
      if (entry === undefined) {
        // An attempt given up on, whose entry may still have been put: undo it.
        const value = letter(rw) + token;
        const key = readWritePrefixOf(rw.key) + value;
        await remove(etcd, { key, value, lease: undefined, seconds: null });
        return false;
      }
      return remove(etcd, entry, true);
    },

    extend: (rw, _token, ttl, entry) => helpers.extend(etcdOf(rw), ttl, entry),

    // Read from the line: those first in it hold (an eligible waiter not yet told included).
    async state(rw) {
      const prefix = readWritePrefixOf(rw.key);
      const { kvs } = await etcdOf(rw).getAll().prefix(prefix).sort('Create', 'Ascend').exec();
      let readers = 0;
      let writer = false;
      let writerWaiting = false;
      let writerAhead = false;
      kvs.forEach((kv, index) => {
        const reading = kv.value.toString().startsWith('r');
        if (reading && !writerAhead) readers += 1;
        if (!reading) {
          if (index === 0) writer = true;
          else writerWaiting = true;
          writerAhead = true;
        }
      });
      return { readers, writer, writerWaiting };
    },

    handOff: helpers.handOff,
  };
}
