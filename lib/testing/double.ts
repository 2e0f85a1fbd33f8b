/**
 * A test double for the unit tests of code that takes locks: a real `LockManager` on the memory
 * backend (the same core: waiting, timeouts, expiry, errors), with a store of its own, whose
 * locks a test can make look busy (held by "another process") or lost, on demand.
 */
import { MemoryLock, MemoryStore } from '../backends/memory/index.js';
import type { BaseLock } from '../core/base-lock.js';
import { LockNotHeldError } from '../core/errors/index.js';
import { LockManager, type LockManagerOptions } from '../core/manager.js';

/** What a test does to the locks of a testing manager (or `LockService`). */
export interface LockControls {
  /**
   * Makes `name` look held by someone else (another process) until `free(name)`: acquires with
   * `blocking: false` see it taken, blocking ones wait (and time out), `@Locked` methods are
   * refused or wait. Resolves false if it was already held by anyone.
   */
  makeBusy(name: string, options?: { namespace?: string | null }): Promise<boolean>;
  /** Ends a `makeBusy(name)`: the lock is free again (waiters get it). */
  free(name: string, options?: { namespace?: string | null }): Promise<void>;
  /**
   * Loses the lock `name` under its holders: its entry goes from the store (as if it expired or
   * was taken), and each lock object of this manager holding it learns it at once (its `signal`
   * aborts with a `LockLostError`, reason 'taken'; the manager emits 'lost'; its `release()` then
   * rejects with `LockNotHeldError`). Resolves how many holders lost it.
   */
  loseLock(name: string, options?: { namespace?: string | null }): Promise<number>;
  /** The store behind the locks (to look at it, or share it with another testing manager). */
  readonly store: MemoryStore;
}

/** A memory-backed `LockManager` with `LockControls`. */
export type TestingLockManager = LockManager & LockControls;

/** The options of a testing manager: a manager's, without the backend and client it chooses. */
export type TestingLockManagerOptions = Omit<
  LockManagerOptions,
  'backend' | 'client' | 'connection'
> & {
  /** Share a store with another testing manager ("two processes"); default: a new one. */
  store?: MemoryStore;
};

/** The controls over `manager`'s locks (a manager on the memory backend with `store`). */
export function lockControls(manager: LockManager, store: MemoryStore): LockControls {
  const busy = new Map<string, BaseLock>();
  const keyOf = (name: string, options: { namespace?: string | null } = {}) =>
    manager.lock(name, { ...options, expire: null }).key;
  return {
    store,
    async makeBusy(name, options = {}) {
      // Another "process": a lock on the same store that this manager does not track.
      const holder = new MemoryLock(name, { ...options, client: store, expire: null });
      if (!(await holder.acquire(false))) return false;
      busy.set(keyOf(name, options), holder);
      return true;
    },
    async free(name, options = {}) {
      const key = keyOf(name, options);
      const holder = busy.get(key);
      busy.delete(key);
      await holder?.release();
    },
    async loseLock(name, options = {}) {
      const key = keyOf(name, options);
      const token = store.get(key);
      if (token !== undefined) store.deleteIfOwner(key, token);
      const holders = manager.held().filter((lock) => lock.key === key);
      // Each holder's next renewal finds its entry gone and marks its holding lost ('taken').
      await Promise.all(
        holders.map((lock) =>
          lock.extend(60_000).then(
            () => undefined,
            (error: unknown) => {
              if (!(error instanceof LockNotHeldError)) throw error;
            },
          ),
        ),
      );
      return holders.length;
    },
  };
}

/**
 * A memory-backed `LockManager` for unit tests, with a store of its own, and `makeBusy()`,
 * `free()` and `loseLock()`.
 *
 * @example
 * const locks = createTestingLockManager();
 * await locks.makeBusy('report');
 * await expect(service.buildReport()).rejects.toThrow(LockTimeoutError);
 */
export function createTestingLockManager(
  options: TestingLockManagerOptions = {},
): TestingLockManager {
  const { store = new MemoryStore(), ...managerOptions } = options;
  const manager = new LockManager({ ...managerOptions, backend: 'memory', client: store });
  return Object.assign(manager, lockControls(manager, store));
}
