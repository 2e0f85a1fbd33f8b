import type { AttemptOutcome, ClientClass, LockBackend, LockTarget } from '../../core/backend.js';
import { BaseLock, type BaseLockOptions } from '../../core/base-lock.js';
import { parseConnection } from '../../core/connection.js';
import { loadDriver } from '../../core/driver.js';
import { backends } from '../../core/registry.js';
import { now } from '../../core/timing.js';
import type { EtcdClient, EtcdWatcher, WatchedKeyValue } from './client.js';
import { etcdInspection } from './inspect.js';
import { etcdElection } from './election.js';
import { keepAlive, revoke, takeLease } from './leases.js';
import { ahead, countAhead, type Entry, enter, leave, remove } from './queue.js';
import { etcdReadWrite } from './read-write.js';

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
 * The prefix of a semaphore's entries: its key and another control character, so that a lock and
 * a semaphore of the same name never share entries (neither prefix starts with the other).
 */
const permitPrefixOf = (key: string) => `${key}\u001e`;

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

/** A blocking acquire's place in line: its entry, once put, and what it read of those ahead. */
interface Waiting {
  readonly wake: () => void;
  entry?: Entry | undefined;
  ahead?: { key: string; fromRevision: string; count: number } | undefined;
  closed: boolean;
}

/**
 * A lock's waiter watches the entry right ahead of it (`watched`). A semaphore's waiter watches
 * the deletes under the prefix (`counting`), counting down those of the entries ahead of it from
 * what its last attempt read, and is woken when fewer than `limit` are left: one waiter per
 * freed permit.
 */
interface EtcdWaiter extends Waiting {
  watched?: { key: string; watcher: EtcdWatcher } | undefined;
  counting?: PermitCount | undefined;
}

interface PermitCount {
  /** The waiting entry's create revision (the deletes of later entries do not count). */
  readonly revision: bigint;
  readonly watcher: EtcdWatcher;
  /** How many entries are ahead: as the attempt read them, less the deletes seen since. */
  count: number;
}

/** A line of entries: a lock's (limit 1) or a semaphore's. */
interface Line {
  readonly prefix: string;
  /** How many entries at the head of the line hold. */
  readonly limit: number;
  readonly expire: number | null;
  /**
   * Whether a waiter needs the exact number of entries ahead (a semaphore's waiters count them
   * down), not only the entry right ahead (a lock's waiters watch that one).
   */
  readonly counted: boolean;
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

/** Puts an entry with a lease of `seconds` (none when null); `first`: among the first `limit`. */
async function put(
  etcd: EtcdClient,
  prefix: string,
  token: string,
  seconds: number | null,
  limit: number,
) {
  const refreshedAt = now();
  const lease = seconds === null ? undefined : { id: await takeLease(etcd, seconds), seconds };
  return enter(etcd, prefix, token, lease, refreshedAt, limit);
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
function lostPlace(etcd: EtcdClient, waiter: Waiting): false {
  const entry = waiter.entry;
  waiter.entry = undefined;
  waiter.ahead = undefined;
  if (entry) leave(etcd, entry);
  return false;
}

function unwatch(waiter: EtcdWaiter): void {
  waiter.watched?.watcher.cancel().catch(() => undefined);
  waiter.watched = undefined;
  waiter.counting?.watcher.cancel().catch(() => undefined);
  waiter.counting = undefined;
}

/** The waiter is done: no more watching, and out of line unless it holds. */
function closeWaiter(lock: LockTarget, waiter: EtcdWaiter, granted: boolean): void {
  waiter.closed = true;
  unwatch(waiter);
  const entry = waiter.entry;
  waiter.entry = undefined;
  waiter.ahead = undefined;
  if (!granted && entry) leave(etcdOf(lock), entry);
}

/**
 * One attempt in a line of entries (a lock's, `limit` 1, or a semaphore's): the entries with the
 * `limit` smallest create revisions hold. Not waiting: put an entry, keep it if among the first
 * `limit`, else delete it. Waiting: put an entry once and keep it (its place in line), renewing
 * its lease as needed, until fewer than `limit` entries are ahead of it.
 */
async function acquireIn(
  etcd: EtcdClient,
  line: Line,
  token: string,
  waiter: Waiting | undefined,
): Promise<AttemptOutcome<Entry>> {
  const { prefix, limit, expire } = line;
  if (waiter === undefined) {
    // Not waiting: hold if among the first `limit` in line, else leave at once.
    const made = await put(etcd, prefix, token, leaseSeconds(expire), limit);
    if (made.first) return (await grant(etcd, expire, made.entry)) ?? false;
    await remove(etcd, made.entry);
    return false;
  }
  let entry = waiter.entry;
  if (entry === undefined) {
    const made = await put(
      etcd,
      prefix,
      token,
      leaseSeconds(expire) ?? WAITER_LEASE_SECONDS,
      limit,
    );
    if (waiter.closed) {
      // The acquire ended while this attempt ran: it must not leave an entry in line.
      await remove(etcd, made.entry);
      return false;
    }
    if (made.first) return (await grant(etcd, expire, made.entry)) ?? false;
    waiter.entry = entry = made.entry;
  } else if (now() - entry.refreshedAt >= refreshEvery(entry) && !(await refresh(etcd, entry))) {
    return lostPlace(etcd, waiter);
  }
  // A lock needs only the entry right ahead; a semaphore the exact number of entries ahead.
  const before = line.counted
    ? await countAhead(etcd, prefix, entry)
    : await ahead(etcd, prefix, entry);
  if (before === undefined || before.count < limit) {
    // Fewer than `limit` ahead (for a lock: nobody): it holds, and the holding expires a TTL
    // after the lease's last renewal. Renew it now unless that was only a moment ago (then the
    // holding counts from then).
    if (now() - entry.refreshedAt > refreshEvery(entry) / 30 && !(await refresh(etcd, entry))) {
      return lostPlace(etcd, waiter);
    }
    waiter.entry = undefined;
    waiter.ahead = undefined;
    return (await grant(etcd, expire, entry)) ?? lostPlace(etcd, waiter);
  }
  waiter.ahead = before;
  return {
    granted: false,
    position: Math.max(0, before.count - limit),
    renewWithin: Math.max(0, entry.refreshedAt + refreshEvery(entry) - now()),
  };
}

/** Deletes the entry if it still holds its token (`undefined`: undo an attempt given up on). */
async function releaseIn(
  etcd: EtcdClient,
  prefix: string,
  token: string,
  entry: Entry | undefined,
): Promise<boolean> {
  // No entry: an attempt given up on, whose entry may still have been put (undo).
  if (entry === undefined) {
    await remove(etcd, { key: prefix + token, value: token, lease: undefined, seconds: null });
    return false;
  }
  return remove(etcd, entry, true);
}

/**
 * Extends to `ttl` if the entry still holds the lock (or permit): with the lease's own TTL, a keep-alive of
 * the lease (then a read that the entry is still there on it); with another, the entry moves
 * to a new lease and the old one is revoked.
 */
async function extendEntry(etcd: EtcdClient, ttl: number, entry: Entry | undefined) {
  if (entry === undefined) return false;
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
    semaphore: true,
    readWrite: true,
    election: true,
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

  acquire: (lock, token, waiter) =>
    acquireIn(
      etcdOf(lock),
      { prefix: prefixOf(lock.key), limit: 1, expire: lock.expire, counted: false },
      token,
      waiter,
    ),

  release: (lock, token, entry) => releaseIn(etcdOf(lock), prefixOf(lock.key), token, entry),

  extend: (lock, _token, ttl, entry) => extendEntry(etcdOf(lock), ttl, entry),

  async locked(lock) {
    return (await etcdOf(lock).getAll().prefix(prefixOf(lock.key)).count()) > 0;
  },
  async ping(client) {
    await client.get('nestjs-sherlock:ping').exec();
  },

  // inspect / list / forceRelease: the head of a lock's line (inspect.ts).
  inspection: etcdInspection,

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
    close: closeWaiter,
  },

  /**
   * A semaphore: the mutex recipe generalised. Each acquirer puts an entry under the semaphore's
   * prefix (`key` + `\u001e` + owner token) on a lease; the entries with the `limit` smallest
   * create revisions hold a permit, and that revision is the permit's fencing token. A dead
   * holder's entry goes with its lease, at the server. Waiters keep their entry (their place in
   * line) and watch the deletes ahead of them.
   */
  semaphore: {
    acquire: (sem, token, waiter) =>
      acquireIn(
        etcdOf(sem),
        {
          prefix: permitPrefixOf(sem.key),
          limit: sem.limit,
          expire: sem.expire,
          counted: true,
        },
        token,
        waiter,
      ),
    release: (sem, token, entry) => releaseIn(etcdOf(sem), permitPrefixOf(sem.key), token, entry),
    extend: (sem, _token, ttl, entry) => extendEntry(etcdOf(sem), ttl, entry),
    // The entries first in line hold (an eligible waiter that has not noticed yet included).
    async count(sem) {
      const entries = await etcdOf(sem).getAll().prefix(permitPrefixOf(sem.key)).count();
      return Math.min(entries, sem.limit);
    },
    handOff: {
      open: (_sem, wake) => ({ wake, closed: false }),
      // Each refused attempt read the entries ahead: the watch starts from the revision after
      // that read (a new watch each time, so that no delete is missed or counted twice).
      async listen(sem, waiter) {
        const before = waiter.ahead;
        const entry = waiter.entry;
        if (before === undefined || entry === undefined) return false; // no place yet: attempt
        unwatch(waiter);
        // Listeners go on before the watch connects (as for a lock).
        const watcher = etcdOf(sem)
          .watch()
          .prefix(permitPrefixOf(sem.key))
          .only('delete')
          .withPreviousKV()
          .startRevision(before.fromRevision)
          .watcher();
        const state: PermitCount = {
          revision: BigInt(entry.revision),
          watcher,
          count: before.count,
        };
        watcher.on('delete', (_kv: WatchedKeyValue, previous?: WatchedKeyValue) => {
          if (waiter.counting !== state) return; // replaced by a newer watch
          // An entry behind this one (or this one, its lease run out) frees nothing for it.
          if (previous !== undefined && BigInt(previous.create_revision) >= state.revision) return;
          state.count -= 1;
          if (state.count < sem.limit) waiter.wake();
        });
        watcher.on('error', () => undefined);
        waiter.counting = state;
        return true;
      },
      close: closeWaiter,
    },
  },

  // Leader election: etcd's election recipe over the lock's line (see election.ts).
  election: etcdElection,
};

/** The read-write lock: etcd's rwmutex recipe, over the lock's own helpers (read-write.ts). */
const etcdWithReadWrite: LockBackend<EtcdClient, Entry, EtcdWaiter> = {
  ...etcdBackend,
  readWrite: etcdReadWrite<EtcdWaiter>({
    leaseSeconds,
    waiterLeaseSeconds: WAITER_LEASE_SECONDS,
    refreshEvery,
    refresh,
    grant,
    extend: extendEntry,
    handOff: etcdBackend.handOff!,
  }),
};

export const ETCD = backends.register({ ...etcdWithReadWrite, lockClass: EtcdLock });
