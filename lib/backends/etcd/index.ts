import type { ClientClass, LockBackend, LockTarget } from '../../core/backend.js';
import { BaseLock, type BaseLockOptions } from '../../core/base-lock.js';
import { parseConnection } from '../../core/connection.js';
import { loadDriver } from '../../core/driver.js';
import { backends } from '../../core/registry.js';
import { now } from '../../core/timing.js';
import type { EtcdClient, EtcdWatcher } from './client.js';
import { keepAlive, revoke, takeLease } from './leases.js';
import { ahead, type Entry, enter, leave, remove } from './queue.js';

interface Etcd3Module {
  Etcd3: ClientClass & (new (options: Record<string, unknown>) => EtcdClient);
  Namespace: ClientClass;
}

/** Options of an EtcdLock: the lock options and an optional etcd3 `Etcd3` (or namespace) client. */
export type EtcdLockOptions = BaseLockOptions;

/** The lease of a waiting entry when the lock has no expiry (`expire: null`), kept alive. */
const WAITER_LEASE_SECONDS = 10;

/** The prefix of a lock's entries: its key and a control character, which no lock name holds. */
const prefixOf = (key: string) => `${key}\u001f`;

/**
 * A lock in Etcd, with the queue recipe of etcd's own `concurrency.Mutex`: each acquirer puts an
 * entry `key` + `\u001f` + its owner token, attached to a lease of `expire` rounded **up** to whole
 * seconds; the entry with the smallest create revision holds the lock, and that revision is its
 * fencing token. A blocking acquire keeps its entry (its place in line) and watches only the
 * entry right ahead of it: each release (a delete, or a lease running out) wakes one waiter,
 * first come first served. A non-blocking acquire that is not first in line deletes its entry.
 * Etcd raises a lease TTL below its minimum (2 s with the default election timeout) to that
 * minimum.
 *
 * @example
 * import { Etcd3 } from 'etcd3';
 * const lock = new EtcdLock('deploy', { client: new Etcd3({ hosts: process.env.ETCD_HOSTS }) });
 */
export class EtcdLock extends BaseLock {
  constructor(name: string, options?: EtcdLockOptions) {
    super(name, options);
  }

  /**
   * The prefix of this lock's entries: the key and a control character, which no lock name may
   * contain, so no other lock's entries can share it.
   */
  get entryPrefix(): string {
    return prefixOf(this.key);
  }
}

/** A blocking acquire's place in line: its entry, once put, and the watch on the one ahead. */
interface EtcdWaiter {
  readonly wake: () => void;
  entry?: Entry | undefined;
  ahead?: { key: string; fromRevision: string; count: number } | undefined;
  watched?: { key: string; watcher: EtcdWatcher } | undefined;
  closed: boolean;
}

const etcdOf = (lock: LockTarget) => lock.client as EtcdClient;

/** The lease TTL sent to etcd for `expire`: whole seconds, rounded up. */
const leaseSeconds = (expire: number | null) => (expire === null ? null : Math.ceil(expire / 1000));

/** How often a waiting entry's lease is kept alive: a third of its TTL. */
const refreshEvery = (entry: Entry) =>
  entry.seconds === null ? Infinity : (entry.seconds * 1000) / 3;

/** One keep-alive of the entry's lease; false if the lease is gone. */
async function refresh(etcd: EtcdClient, entry: Entry): Promise<boolean> {
  if (entry.lease === undefined) return true;
  const sentAt = now();
  if (!(await keepAlive(etcd, entry.lease))) return false;
  entry.refreshedAt = sentAt;
  return true;
}

/** Puts an entry with a lease of `seconds` (none when null). */
async function put(etcd: EtcdClient, prefix: string, token: string, seconds: number | null) {
  const refreshedAt = now();
  const lease = seconds === null ? undefined : { id: await takeLease(etcd, seconds), seconds };
  return enter(etcd, prefix, token, lease, refreshedAt);
}

/**
 * The entry is first in line: it holds the lock. Without expiry, it waited with a lease (so that
 * a dead waiter could not block the line for ever): the holder keeps it without one.
 */
async function grant(etcd: EtcdClient, expire: number | null, entry: Entry) {
  if (expire === null && entry.lease !== undefined) {
    const { succeeded } = await etcd
      .if(entry.key, 'Value', '==', entry.value)
      .then(etcd.put(entry.key).value(entry.value))
      .commit();
    if (!succeeded) return undefined;
    revoke(etcd, entry.lease);
    entry.lease = undefined;
    entry.seconds = null;
  }
  return {
    granted: true as const,
    fencingToken: entry.revision,
    since: entry.refreshedAt,
    held: entry,
  };
}

/** The waiter's entry is gone (its lease ran out): it queues again from the back. */
function lostPlace(etcd: EtcdClient, waiter: EtcdWaiter): false {
  const entry = waiter.entry;
  waiter.entry = undefined;
  waiter.ahead = undefined;
  if (entry) leave(etcd, entry);
  return false;
}

function unwatch(waiter: EtcdWaiter): void {
  waiter.watched?.watcher.cancel().catch(() => undefined);
  waiter.watched = undefined;
}

/** A client from hosts (`'http://h:2379'`, comma-separated or an array) or etcd3 options. */
function connectEtcd(connection: unknown): EtcdClient {
  const { Etcd3 } = etcd3();
  if (connection === undefined) return new Etcd3({ hosts: '127.0.0.1:2379' });
  const { servers, options } = parseConnection('etcd', connection);
  return new Etcd3(servers.length > 0 ? { hosts: [...servers] } : { ...options });
}

const etcd3 = () => loadDriver<Etcd3Module>('etcd', 'etcd3');

/** The etcd backend: the `concurrency.Mutex` queue recipe, one lease per entry. */
const etcdBackend: LockBackend<EtcdClient, Entry, EtcdWaiter> = {
  name: 'etcd',
  library: 'etcd3',
  capabilities: {
    fencing: true,
    extend: true,
    handOff: 'push',
    crossProcess: true,
    expiry: {
      granularity: 1000,
      minimum: 1000,
      maximum: null,
      earlyBy: 0,
      note: ', and the server raises them to its minimum TTL, 2 s by default',
    },
  },
  clientClass: () => etcd3().Namespace,
  connect: connectEtcd,
  close: (client) => (client as unknown as { close(): void }).close(),
  formatKey: (name, namespace) => (namespace === null ? name : `${namespace}/${name}`),

  async acquire(lock, token, waiter) {
    const etcd = etcdOf(lock);
    const prefix = prefixOf(lock.key);
    if (waiter === undefined) {
      // Not waiting: take the lock if first in line, else leave at once.
      const made = await put(etcd, prefix, token, leaseSeconds(lock.expire));
      if (made.first) return (await grant(etcd, lock.expire, made.entry)) ?? false;
      await remove(etcd, made.entry);
      return false;
    }
    let entry = waiter.entry;
    if (entry === undefined) {
      const made = await put(
        etcd,
        prefix,
        token,
        leaseSeconds(lock.expire) ?? WAITER_LEASE_SECONDS,
      );
      if (waiter.closed) {
        // The acquire ended while this attempt ran: it must not leave an entry in line.
        await remove(etcd, made.entry);
        return false;
      }
      if (made.first) return (await grant(etcd, lock.expire, made.entry)) ?? false;
      waiter.entry = entry = made.entry;
    } else if (now() - entry.refreshedAt >= refreshEvery(entry) && !(await refresh(etcd, entry))) {
      return lostPlace(etcd, waiter);
    }
    const before = await ahead(etcd, prefix, entry);
    if (before === undefined) {
      // Nobody ahead: the lock is ours, and it expires a TTL after the lease's last renewal.
      // Renew it now unless that was only a moment ago (then the holding counts from then).
      if (now() - entry.refreshedAt > refreshEvery(entry) / 30 && !(await refresh(etcd, entry))) {
        return lostPlace(etcd, waiter);
      }
      waiter.entry = undefined;
      waiter.ahead = undefined;
      return (await grant(etcd, lock.expire, entry)) ?? lostPlace(etcd, waiter);
    }
    waiter.ahead = before;
    return {
      granted: false,
      position: Math.max(0, before.count - 1),
      renewWithin: Math.max(0, entry.refreshedAt + refreshEvery(entry) - now()),
    };
  },

  async release(lock, token, entry) {
    const etcd = etcdOf(lock);
    // No entry: an attempt given up on, whose entry may still have been put (undo).
    if (entry === undefined) {
      await remove(etcd, {
        key: prefixOf(lock.key) + token,
        value: token,
        lease: undefined,
        seconds: null,
      });
      return false;
    }
    return remove(etcd, entry, true);
  },

  /**
   * Extends to `ttl` if the entry still holds the lock: with the lease's own TTL, a keep-alive of
   * the lease (then a read that the entry is still there on it); with another, the entry moves
   * to a new lease and the old one is revoked.
   */
  async extend(lock, _token, ttl, entry) {
    if (entry === undefined) return false;
    const etcd = etcdOf(lock);
    const seconds = Math.ceil(ttl / 1000);
    if (entry.lease !== undefined && seconds === entry.seconds) {
      if (!(await keepAlive(etcd, entry.lease))) return false;
      const kv = (await etcd.get(entry.key).exec()).kvs[0];
      return kv?.value.toString() === entry.value && kv.lease === entry.lease;
    }
    const { ID: lease } = await etcd.leaseClient.leaseGrant({ TTL: seconds });
    const { succeeded } = await etcd
      .if(entry.key, 'Value', '==', entry.value)
      .then(etcd.put(entry.key).value(entry.value).lease(lease))
      .commit();
    revoke(etcd, succeeded ? entry.lease : lease);
    if (succeeded) {
      entry.lease = lease;
      entry.seconds = seconds;
    }
    return succeeded;
  },

  async locked(lock) {
    return (await etcdOf(lock).getAll().prefix(prefixOf(lock.key)).count()) > 0;
  },

  /**
   * A waiter watches the entry right ahead of it, from the revision it last read, so no delete
   * in between is missed: its delete (a release, a waiter giving up, a lease running out) wakes
   * it, and it looks again. The fallback poll covers a watch that fails; the waiting entry's
   * lease is kept alive by the attempts (`renewWithin`).
   */
  handOff: {
    open: (_lock, wake) => ({ wake, closed: false }),
    async listen(lock, waiter) {
      const before = waiter.ahead;
      if (before === undefined) return false; // no place in line yet: attempt at once
      if (waiter.watched?.key === before.key) return true;
      unwatch(waiter);
      // Listeners go on before the watch connects: a delete it replays from `fromRevision` can
      // come in the same message as its confirmation. No need to wait for it to connect either.
      const watcher = etcdOf(lock)
        .watch()
        .key(before.key)
        .startRevision(before.fromRevision)
        .watcher();
      watcher.on('delete', () => waiter.wake());
      watcher.on('error', () => undefined);
      waiter.watched = { key: before.key, watcher };
      return true;
    },
    close(lock, waiter, granted) {
      waiter.closed = true;
      unwatch(waiter);
      const entry = waiter.entry;
      waiter.entry = undefined;
      waiter.ahead = undefined;
      if (!granted && entry) leave(etcdOf(lock), entry);
    },
  },
};

export const ETCD = backends.register({ ...etcdBackend, lockClass: EtcdLock });
