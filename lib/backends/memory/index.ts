import type { LockBackend } from '../../core/backend.js';
import { BaseLock, type BaseLockOptions } from '../../core/base-lock.js';
import { nameOfKey } from '../../core/inspect-keys.js';
import { messages } from '../../core/messages.js';
import { backends, type BackendDefinition } from '../../core/registry.js';
import { memoryElection } from './election.js';
import { memoryReadWrite } from './read-write.js';
import { type MemoryTicket, MemoryStore, storedOf } from './store.js';

export { MemoryStore, type MemoryTicket };

/** Options of a MemoryLock: the lock options and an optional `MemoryStore`. */
export type MemoryLockOptions = BaseLockOptions;

/**
 * An in-process lock with the same API and semantics as the server-backed ones (expiry, owner
 * tokens, timeouts, fencing, first come first served): for unit tests and single-process apps.
 * It does not lock across processes.
 *
 * @example
 * const lock = new MemoryLock('cache-refresh', { expire: 5_000 });
 * if (await lock.acquire(false)) { try { await refresh(); } finally { await lock.release(); } }
 */
export class MemoryLock extends BaseLock<MemoryStore> {
  constructor(name: string, options?: MemoryLockOptions) {
    super(name, options);
  }
}

/** A blocked acquire's place in line: its ticket, in its store's queue once it listens. */
interface MemoryWaiter {
  readonly store: MemoryStore;
  readonly ticket: MemoryTicket;
  queued: boolean;
}

let processStore: MemoryStore | undefined;

/** The memory backend: a `MemoryStore` in this process. */
const memoryBackend: LockBackend<MemoryStore, undefined, MemoryWaiter> = {
  // A read-write lock: readers and writer of each key, first come first served (read-write.ts).
  readWrite: memoryReadWrite,
  name: 'memory',
  library: 'nestjs-sherlock',
  capabilities: {
    fencing: true,
    extend: true,
    handOff: 'push',
    crossProcess: false,
    expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
    semaphore: true,
    readWrite: true,
    election: true,
  },
  clientClass: () => MemoryStore,
  // Every manager or lock without a store of its own shares the process's store, so that two Nest
  // applications in one process see each other's locks, as they would on a server.
  connect: (connection) => {
    if (connection !== undefined) {
      throw new TypeError(
        messages.invalidOption(
          'connection',
          connection,
          'nothing: the memory backend has no server',
        ),
      );
    }
    processStore ??= new MemoryStore();
    return processStore;
  },
  // Nothing to close; the held entries expire or are released like on a server.
  close: () => undefined,

  async acquire(lock, token, waiter) {
    const store = lock.client;
    const ticket = waiter?.queued ? waiter.ticket : undefined;
    const fencingToken = store.setIfAbsent(lock.key, token, lock.expire, ticket);
    if (fencingToken !== false) return { granted: true, fencingToken };
    return {
      granted: false,
      holderTtl: store.ttl(lock.key),
      ...(ticket ? { position: Math.max(0, store.position(lock.key, ticket)) } : {}),
    };
  },
  async release(lock, token) {
    return lock.client.deleteIfOwner(lock.key, token);
  },
  async extend(lock, token, ttl) {
    return lock.client.extendIfOwner(lock.key, token, ttl);
  },
  async locked(lock) {
    return lock.client.get(lock.key) !== undefined;
  },
  // No server: always up.
  async ping() {},
  inspection: {
    async inspect(lock) {
      const held = lock.client.inspect(lock.key);
      return held ? storedOf(held) : null;
    },
    async list({ client, namespace, prefix, limit }) {
      const found = [];
      for (const key of client.heldKeys()) {
        const name = nameOfKey(key, namespace, prefix);
        const held = name === undefined ? undefined : client.inspect(key);
        if (name !== undefined && held) found.push({ name, key, ...storedOf(held) });
        if (found.length >= limit) break;
      }
      return found;
    },
    async forceRelease(lock) {
      const held = lock.client.forceDelete(lock.key);
      return held ? storedOf(held) : null;
    },
  },
  // Waiters wait in line: woken by the release before them (first come, first served).
  handOff: {
    open: (lock, wake) => ({ store: lock.client, ticket: { wake }, queued: false }),
    async listen(lock, waiter) {
      if (waiter.queued) return true;
      waiter.store.enqueue(lock.key, waiter.ticket);
      waiter.queued = true;
      return false; // a release between the last attempt and now was not seen: try once more
    },
    close(lock, waiter) {
      if (waiter.queued) waiter.store.dequeue(lock.key, waiter.ticket);
      waiter.queued = false;
    },
  },

  // A semaphore: the permits of a key, each with its own expiry, and a line of waiters (first
  // come, first served; each release wakes the one waiter it lets in).
  semaphore: {
    async acquire(sem, token, waiter) {
      const store = sem.client;
      const ticket = waiter?.queued ? waiter.ticket : undefined;
      const fencingToken = store.takePermit(sem.key, token, sem.limit, sem.expire, ticket);
      if (fencingToken !== false) return { granted: true, fencingToken };
      const free = sem.limit - store.permitCount(sem.key);
      return {
        granted: false,
        holderTtl: store.permitTtl(sem.key),
        ...(ticket ? { position: Math.max(0, store.permitPosition(sem.key, ticket) - free) } : {}),
      };
    },
    async release(sem, token) {
      return sem.client.releasePermit(sem.key, token, sem.limit);
    },
    async extend(sem, token, ttl) {
      return sem.client.extendPermit(sem.key, token, ttl);
    },
    async count(sem) {
      return sem.client.permitCount(sem.key);
    },
    handOff: {
      open: (sem, wake) => ({ store: sem.client, ticket: { wake }, queued: false }),
      async listen(sem, waiter) {
        if (waiter.queued) return true;
        waiter.store.enqueuePermit(sem.key, waiter.ticket);
        waiter.queued = true;
        return false; // a release between the last attempt and now was not seen: try once more
      },
      close(sem, waiter, granted) {
        if (waiter.queued) waiter.store.dequeuePermit(sem.key, waiter.ticket, sem.limit, granted);
        waiter.queued = false;
      },
    },
  },

  // Leader election: the election's lock, and what its holder published next to it.
  election: memoryElection,
};

export const MEMORY: BackendDefinition = backends.register({
  ...memoryBackend,
  lockClass: MemoryLock,
});
