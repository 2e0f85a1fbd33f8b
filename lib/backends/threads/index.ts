import type { LockBackend } from '../../core/backend.js';
import { BaseLock, type BaseLockOptions } from '../../core/base-lock.js';
import { messages } from '../../core/messages.js';
import { backends, type BackendDefinition } from '../../core/registry.js';
import {
  MAX_EXPIRE,
  THREAD_KEY_BYTES,
  type ThreadHolding,
  ThreadLockTable,
  type ThreadLockState,
  type ThreadLockTableOptions,
  type ThreadTicket,
} from './table.js';

export { ThreadLockTable, type ThreadLockState, type ThreadLockTableOptions };

/** Options of a ThreadLock: the lock options and an optional `ThreadLockTable`. */
export type ThreadLockOptions = BaseLockOptions;

/**
 * A lock shared by the worker threads of one process, over a `ThreadLockTable` (a
 * `SharedArrayBuffer` changed with `Atomics`): no server. Waiters wait in line (first come, first
 * served) with `Atomics.waitAsync`, never blocking an event loop. One process only.
 *
 * @example
 * const lock = new ThreadLock('cache-refresh', { client: new ThreadLockTable(workerData.locks) });
 * await lock.using(async () => refresh());
 */
export class ThreadLock extends BaseLock<ThreadLockTable> {
  constructor(name: string, options?: ThreadLockOptions) {
    super(name, options);
  }
}

/** A blocking acquire's place in line. */
interface ThreadWaiter {
  readonly wake: () => void;
  slot: number;
  ticket: ThreadTicket | undefined;
  /** The slot's change counter read before the last attempt: a change since then wakes. */
  seen: number;
  armed: boolean;
  closed: boolean;
}

/** How long one `Atomics.waitAsync` lasts (the core's fallback poll comes sooner anyway). */
const WAIT_MS = 30_000;

let threadTable: ThreadLockTable | undefined;

/** The slot of the lock's key, registering it; throws when the table is full. */
function slotOf(table: ThreadLockTable, key: string): number {
  const slot = table.slotOf(key, true);
  if (slot === -1) {
    throw new RangeError(
      `The ThreadLockTable is full: its ${table.slots} slots hold other lock names (a name keeps its slot); make the table with more slots`,
    );
  }
  return slot;
}

/** The threads backend: a `ThreadLockTable` shared by the threads of one process. */
const threadsBackend: LockBackend<ThreadLockTable, ThreadHolding, ThreadWaiter> = {
  name: 'threads',
  library: 'nestjs-sherlock',
  capabilities: {
    fencing: true,
    extend: true,
    handOff: 'push',
    // Shared by the threads holding the table's buffer, which never leaves its process.
    crossProcess: false,
    expiry: { granularity: 1, minimum: 1, maximum: MAX_EXPIRE, earlyBy: 0 },
  },
  unsupported: {
    inspection:
      'its table keeps one 64-bit word per slot (a hash of the name, no owner token or metadata), so it cannot tell who holds a lock; use lock.locked() to know whether one is held',
  },
  clientClass: () => ThreadLockTable,
  // Without settings: this thread's table (hand `table.buffer` to other threads to share it);
  // `{ buffer }`: the table of a buffer made in another thread; `{ slots }`: a new table.
  connect: (connection) => {
    if (connection === undefined) {
      threadTable ??= new ThreadLockTable();
      return threadTable;
    }
    const { buffer, slots } = connection as { buffer?: unknown; slots?: unknown };
    if (typeof connection === 'object' && !Array.isArray(connection)) {
      if (buffer instanceof SharedArrayBuffer && slots === undefined) {
        return new ThreadLockTable(buffer);
      }
      if (buffer === undefined && typeof slots === 'number') return new ThreadLockTable({ slots });
    }
    throw new TypeError(
      messages.invalidOption(
        'connection',
        connection,
        '{ buffer } (the buffer of a ThreadLockTable), { slots } (a new table) or nothing (the thread’s own table)',
      ),
    );
  },
  // Nothing to close: the table is memory, freed with its last thread.
  close: () => undefined,
  checkKey: (key) => {
    const bytes = Buffer.byteLength(key);
    return bytes > THREAD_KEY_BYTES
      ? `the key would be ${bytes} bytes long; at most ${THREAD_KEY_BYTES} are allowed in a ThreadLockTable`
      : undefined;
  },

  async acquire(lock, _token, waiter) {
    const table = lock.client;
    const slot = slotOf(table, lock.key);
    if (slot === -2) return { granted: false, renewWithin: 1 }; // the name is being registered
    if (waiter) {
      waiter.slot = slot;
      waiter.seen = table.seq(slot);
    }
    const result = table.attempt(slot, lock.expire, waiter?.ticket);
    if (result.granted) {
      if (waiter) waiter.ticket = undefined; // its turn was taken
      return result;
    }
    if (result.requeue && waiter) waiter.ticket = undefined;
    const { holderTtl, position, renewWithin } = result;
    return { granted: false, holderTtl, position, renewWithin };
  },
  async release(lock, _token, held) {
    return held === undefined ? false : lock.client.release(held);
  },
  async extend(lock, _token, ttl, held) {
    return held === undefined ? false : lock.client.extend(held, ttl);
  },
  async locked(lock) {
    return lock.client.locked(lock.key);
  },
  // Shared memory of this process: always up.
  async ping() {},
  /**
   * A waiter takes a ticket (its place in line) and waits with `Atomics.waitAsync` on its slot's
   * change counter, read before its last attempt: any release, expiry eviction or turn of the
   * line since then wakes it.
   */
  handOff: {
    open: (_lock, wake) => ({
      wake,
      slot: -1,
      ticket: undefined,
      seen: 0,
      armed: false,
      closed: false,
    }),
    async listen(lock, waiter) {
      // No slot yet (another thread is writing the name into it): the attempt's renewWithin
      // brings the next one in a millisecond, after a timer, never in a busy loop.
      if (waiter.slot < 0) return true;
      const table = lock.client;
      if (waiter.ticket === undefined) {
        waiter.ticket = table.enqueue(waiter.slot);
        return false; // in line now: attempt once more with the ticket
      }
      if (!waiter.armed) {
        waiter.armed = true;
        table.waitChange(waiter.slot, waiter.seen, WAIT_MS).then(
          (outcome) => {
            waiter.armed = false;
            if (!waiter.closed && outcome !== 'timed-out') waiter.wake();
          },
          () => (waiter.armed = false),
        );
      }
      return true;
    },
    close(lock, waiter, granted) {
      waiter.closed = true;
      if (!granted && waiter.ticket !== undefined) lock.client.abandon(waiter.ticket);
      waiter.ticket = undefined;
    },
  },
};

export const THREADS: BackendDefinition = backends.register({
  ...threadsBackend,
  lockClass: ThreadLock,
});
