import type { ReadWriteBackend, ReadWriteMode, ReadWriteTarget } from '../../core/backend.js';
import { now } from '../../core/timing.js';
import type { MemoryStore, MemoryTicket } from './store.js';

/** A blocked acquire in a read-write lock's line, and the side it wants. */
interface Queued {
  readonly ticket: MemoryTicket;
  readonly mode: ReadWriteMode;
}

/** One read-write lock's state in a store: its readers, its writer and its line. */
interface ReadWriteEntry {
  /** Reader owner token -> expiry time (`Infinity`: none). */
  readonly readers: Map<string, number>;
  writer: { readonly token: string; expiresAt: number } | null;
  readonly queue: Queued[];
}

/** The read-write locks of each store (apart from its locks and semaphores) and their fence. */
interface StoreState {
  readonly locks: Map<string, ReadWriteEntry>;
  fence: bigint;
}

const states = new WeakMap<MemoryStore, StoreState>();

function stateOf(store: MemoryStore): StoreState {
  let state = states.get(store);
  if (!state) {
    state = { locks: new Map(), fence: 0n };
    states.set(store, state);
  }
  return state;
}

/** The live state of `key` (expired holdings dropped), created if absent. */
function entryOf(store: MemoryStore, key: string): ReadWriteEntry {
  const { locks } = stateOf(store);
  let entry = locks.get(key);
  if (!entry) {
    entry = { readers: new Map(), writer: null, queue: [] };
    locks.set(key, entry);
  }
  const at = now();
  for (const [token, expiresAt] of entry.readers) {
    if (expiresAt <= at) entry.readers.delete(token);
  }
  if (entry.writer && entry.writer.expiresAt <= at) entry.writer = null;
  return entry;
}

/** Forgets `key` once it has no holders and no line. */
function tidy(store: MemoryStore, key: string, entry: ReadWriteEntry): void {
  if (entry.readers.size === 0 && entry.writer === null && entry.queue.length === 0) {
    stateOf(store).locks.delete(key);
  }
}

/**
 * Whether `mode` may be taken now by an acquire at `place` in line (-1: not in line, so behind
 * everyone). First come, first served: a writer needs nobody holding and nobody ahead; a reader
 * needs no writer holding and no writer ahead (readers ahead of it do not stop it).
 */
function allowed(entry: ReadWriteEntry, mode: ReadWriteMode, place: number): boolean {
  if (entry.writer !== null) return false;
  const ahead = place === -1 ? entry.queue : entry.queue.slice(0, place);
  if (mode === 'write') return entry.readers.size === 0 && ahead.length === 0;
  return !ahead.some((each) => each.mode === 'write');
}

/** Wakes every waiter that may take its side now (the readers at the head, or the first writer). */
function wakeAllowed(entry: ReadWriteEntry): void {
  entry.queue.forEach((each, place) => {
    if (allowed(entry, each.mode, place)) each.ticket.wake();
  });
}

/** A blocked acquire's place in line: its ticket, in its store's line once it listens. */
export interface MemoryReadWriteWaiter {
  readonly store: MemoryStore;
  readonly ticket: MemoryTicket;
  queued: boolean;
}

const expiryOf = (ttl: number | null) => (ttl === null ? Infinity : now() + ttl);

/** The remaining time of the holding(s) in the way of `mode`, in ms (-1: no expiry, or none). */
function holderTtl(entry: ReadWriteEntry, mode: ReadWriteMode): number {
  const times = [
    ...(entry.writer ? [entry.writer.expiresAt] : []),
    ...(mode === 'write' ? entry.readers.values() : []),
  ];
  if (times.length === 0) return -1;
  const last = Math.max(...times);
  return last === Infinity ? -1 : Math.max(0, last - now());
}

/**
 * The memory backend's read-write lock: readers and writer of each key in this process, and a
 * line of waiters served first come, first served (readers next to each other in line go in
 * together; a writer waits for everyone ahead, and every reader behind it waits for it).
 */
export const memoryReadWrite: ReadWriteBackend<MemoryStore, undefined, MemoryReadWriteWaiter> = {
  async acquire(rw: ReadWriteTarget<MemoryStore>, token, waiter) {
    const store = rw.client;
    const entry = entryOf(store, rw.key);
    const place =
      waiter?.queued === true ? entry.queue.findIndex((each) => each.ticket === waiter.ticket) : -1;
    if (!allowed(entry, rw.mode, place)) {
      tidy(store, rw.key, entry);
      return {
        granted: false,
        holderTtl: holderTtl(entry, rw.mode),
        ...(place >= 0 ? { position: place } : {}),
      };
    }
    if (rw.mode === 'write') entry.writer = { token, expiresAt: expiryOf(rw.expire) };
    else entry.readers.set(token, expiryOf(rw.expire));
    const state = stateOf(store);
    state.fence += 1n;
    return { granted: true, fencingToken: state.fence.toString() };
  },

  async release(rw, token) {
    const store = rw.client;
    const entry = entryOf(store, rw.key);
    let released = false;
    if (rw.mode === 'write' && entry.writer?.token === token) {
      entry.writer = null;
      released = true;
    } else if (rw.mode === 'read') {
      released = entry.readers.delete(token);
    }
    if (released) wakeAllowed(entry);
    tidy(store, rw.key, entry);
    return released;
  },

  async extend(rw, token, ttl) {
    const entry = entryOf(rw.client, rw.key);
    if (rw.mode === 'write') {
      if (entry.writer?.token !== token) return false;
      entry.writer.expiresAt = now() + ttl;
      return true;
    }
    if (!entry.readers.has(token)) return false;
    entry.readers.set(token, now() + ttl);
    return true;
  },

  async state(rw) {
    const entry = entryOf(rw.client, rw.key);
    const state = {
      readers: entry.readers.size,
      writer: entry.writer !== null,
      writerWaiting: entry.queue.some((each) => each.mode === 'write'),
    };
    tidy(rw.client, rw.key, entry);
    return state;
  },

  handOff: {
    open: (rw, wake) => ({ store: rw.client, ticket: { wake }, queued: false }),
    async listen(rw, waiter) {
      if (waiter.queued) return true;
      entryOf(waiter.store, rw.key).queue.push({ ticket: waiter.ticket, mode: rw.mode });
      waiter.queued = true;
      return false; // a release between the last attempt and now was not seen: try once more
    },
    // Out of line (granted, or given up): those it held back may go now.
    close(rw, waiter) {
      if (!waiter.queued) return;
      waiter.queued = false;
      const entry = entryOf(waiter.store, rw.key);
      const index = entry.queue.findIndex((each) => each.ticket === waiter.ticket);
      if (index !== -1) entry.queue.splice(index, 1);
      wakeAllowed(entry);
      tidy(waiter.store, rw.key, entry);
    },
  },
};
