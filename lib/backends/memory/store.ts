import type { StoredLock } from '../../core/backend.js';
import { now } from '../../core/timing.js';

interface Entry {
  readonly token: string;
  readonly expiresAt: number;
  /** The fencing token of this holding. */
  readonly fence?: string;
}

/** @internal what `inspect` reads of a held key. */
export interface MemoryHolding {
  readonly token: string;
  /** Remaining time to live in ms (-1: no expiry). */
  readonly ttl: number;
  readonly fence: string | undefined;
  /** How many blocked acquires are in line. */
  readonly waiting: number;
}

/** @internal a holding as the inspection primitives report it. */
export const storedOf = (held: MemoryHolding): StoredLock => ({
  owner: held.token,
  ttl: held.ttl,
  waiting: held.waiting,
  ...(held.fence === undefined ? {} : { fencingToken: held.fence }),
});

/** A blocked acquire's place in a key's line. */
export interface MemoryTicket {
  readonly wake: () => void;
}

/** A semaphore's permits (owner token -> expiry time) and its line of blocked acquires. */
interface Permits {
  readonly holders: Map<string, number>;
  readonly queue: MemoryTicket[];
}

/**
 * The store of the memory backend: a map of keys to owner tokens with expiry times, in this
 * process only, and the line of blocked acquires of each key. Every `MemoryLock` without a store
 * of its own shares the process's store.
 *
 * @example
 * const store = new MemoryStore();
 * const lock = new MemoryLock('job', { client: store });
 */
export class MemoryStore {
  private readonly entries = new Map<string, Entry>();
  private readonly queues = new Map<string, MemoryTicket[]>();
  /** Semaphores, apart from the locks: a semaphore and a lock of one name never meet. */
  private readonly semaphores = new Map<string, Permits>();
  private fence = 0n;

  /** The token holding `key`, or undefined (expired entries are dropped on access). */
  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt <= now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry?.token;
  }

  /**
   * Sets `key` to `token` unless it is held, or others are in line before `ticket`; `ttl` in ms,
   * or null for no expiry. Returns the fencing token (from a counter of this store, so it
   * increases for every key), or `false`.
   */
  setIfAbsent(
    key: string,
    token: string,
    ttl: number | null,
    ticket?: MemoryTicket,
  ): string | false {
    if (this.get(key) !== undefined) return false;
    // First come, first served: while acquires wait in line, only the first may take the lock.
    const queue = this.queues.get(key);
    if (queue && queue.length > 0 && queue[0] !== ticket) return false;
    this.fence += 1n;
    const fence = this.fence.toString();
    this.entries.set(key, { token, expiresAt: ttl === null ? Infinity : now() + ttl, fence });
    return fence;
  }

  /** Sets the expiry of `key` to `ttl` ms from now if `token` holds it. */
  extendIfOwner(key: string, token: string, ttl: number): boolean {
    if (this.get(key) !== token) return false;
    const fence = this.entries.get(key)?.fence;
    this.entries.set(key, { token, expiresAt: now() + ttl, ...(fence ? { fence } : {}) });
    return true;
  }

  /** @internal the holding of `key`, or undefined when it is free. */
  inspect(key: string): MemoryHolding | undefined {
    const token = this.get(key);
    const entry = this.entries.get(key);
    if (token === undefined || !entry) return undefined;
    return {
      token,
      ttl: this.ttl(key),
      fence: entry.fence,
      waiting: this.queues.get(key)?.length ?? 0,
    };
  }

  /** @internal the keys held now (expired ones dropped). */
  heldKeys(): string[] {
    return [...this.entries.keys()].filter((key) => this.get(key) !== undefined);
  }

  /** @internal deletes `key` whoever holds it and wakes the first in line; returns what it deleted. */
  forceDelete(key: string): MemoryHolding | undefined {
    const holding = this.inspect(key);
    if (holding) this.deleteIfOwner(key, holding.token);
    return holding;
  }

  /** Deletes `key` if `token` holds it, and wakes the first in line. */
  deleteIfOwner(key: string, token: string): boolean {
    if (this.get(key) !== token) return false;
    this.entries.delete(key);
    this.queues.get(key)?.[0]?.wake(); // hand the lock to the first in line
    return true;
  }

  /** Remaining time to live of the lock on `key` in ms (-1: no expiry or not held). */
  ttl(key: string): number {
    const entry = this.get(key) === undefined ? undefined : this.entries.get(key);
    return entry && entry.expiresAt !== Infinity ? entry.expiresAt - now() : -1;
  }

  /** Puts a blocked acquire in line for `key`. */
  enqueue(key: string, ticket: MemoryTicket): void {
    const queue = this.queues.get(key);
    if (queue) queue.push(ticket);
    else this.queues.set(key, [ticket]);
  }

  /** The place of `ticket` in `key`'s line (0: first), or -1. */
  position(key: string, ticket: MemoryTicket): number {
    return this.queues.get(key)?.indexOf(ticket) ?? -1;
  }

  /** Takes a ticket out of line (it got the lock or gave up); the next one may try now. */
  dequeue(key: string, ticket: MemoryTicket): void {
    const queue = this.queues.get(key);
    if (!queue) return;
    const index = queue.indexOf(ticket);
    if (index === -1) return;
    queue.splice(index, 1);
    if (queue.length === 0) this.queues.delete(key);
    else if (index === 0 && this.get(key) === undefined) queue[0]?.wake();
  }

  /** The live permits of the semaphore `key` (expired ones dropped), if it has any state. */
  private permits(key: string): Permits | undefined {
    const state = this.semaphores.get(key);
    if (!state) return undefined;
    const at = now();
    for (const [token, expiresAt] of state.holders) {
      if (expiresAt <= at) state.holders.delete(token);
    }
    return state;
  }

  /** Forgets the state of `key` once it has neither permits nor waiters. */
  private tidy(key: string, state: Permits): void {
    if (state.holders.size === 0 && state.queue.length === 0) this.semaphores.delete(key);
  }

  /**
   * Takes a permit of the semaphore `key` for `token` if fewer than `limit` are held, and (first
   * come, first served) fewer than `limit - held` acquires wait in line before `ticket` (an
   * acquire not in line comes after all of them). `ttl` in ms, or null for no expiry. Returns
   * the fencing token, or `false`.
   */
  takePermit(
    key: string,
    token: string,
    limit: number,
    ttl: number | null,
    ticket?: MemoryTicket,
  ): string | false {
    const state = this.permits(key) ?? { holders: new Map<string, number>(), queue: [] };
    const place = ticket ? state.queue.indexOf(ticket) : -1;
    const ahead = place === -1 ? state.queue.length : place;
    if (state.holders.size + ahead >= limit) {
      this.tidy(key, state);
      return false;
    }
    state.holders.set(token, ttl === null ? Infinity : now() + ttl);
    this.semaphores.set(key, state);
    this.fence += 1n;
    return this.fence.toString();
  }

  /** Gives back `token`'s permit of `key`, and wakes the waiter it lets in (`limit`: its call's). */
  releasePermit(key: string, token: string, limit: number): boolean {
    const state = this.permits(key);
    if (!state?.holders.delete(token)) return false;
    // The waiter now within the first `limit - held` in line is the one this permit lets in.
    state.queue[limit - state.holders.size - 1]?.wake();
    this.tidy(key, state);
    return true;
  }

  /** Sets the expiry of `token`'s permit of `key` to `ttl` ms from now, if it holds one. */
  extendPermit(key: string, token: string, ttl: number): boolean {
    const state = this.permits(key);
    if (!state?.holders.has(token)) return false;
    state.holders.set(token, now() + ttl);
    return true;
  }

  /** How many permits of `key` are held. */
  permitCount(key: string): number {
    return this.permits(key)?.holders.size ?? 0;
  }

  /** In how many ms the first permit of `key` to expire does (-1: none expires, or none held). */
  permitTtl(key: string): number {
    const state = this.permits(key);
    if (!state || state.holders.size === 0) return -1;
    const first = Math.min(...state.holders.values());
    return first === Infinity ? -1 : Math.max(0, first - now());
  }

  /** Puts a blocked acquire in line for a permit of `key`. */
  enqueuePermit(key: string, ticket: MemoryTicket): void {
    const state = this.permits(key) ?? { holders: new Map<string, number>(), queue: [] };
    state.queue.push(ticket);
    this.semaphores.set(key, state);
  }

  /** The place of `ticket` in the line for `key` (0: first), or -1. */
  permitPosition(key: string, ticket: MemoryTicket): number {
    return this.semaphores.get(key)?.queue.indexOf(ticket) ?? -1;
  }

  /**
   * Takes a ticket out of the line for `key`; if it left without a permit from a place that had
   * one free (a wake-up it did not use), the waiter moving into that place is woken.
   */
  dequeuePermit(key: string, ticket: MemoryTicket, limit: number, granted: boolean): void {
    const state = this.permits(key);
    if (!state) return;
    const index = state.queue.indexOf(ticket);
    if (index === -1) return;
    state.queue.splice(index, 1);
    const free = limit - state.holders.size;
    if (!granted && index < free) state.queue[free - 1]?.wake();
    this.tidy(key, state);
  }

  /** Number of live entries. */
  get size(): number {
    for (const key of this.entries.keys()) this.get(key);
    return this.entries.size;
  }

  /** Forgets every entry. */
  clear(): void {
    this.entries.clear();
    this.semaphores.clear();
  }
}
