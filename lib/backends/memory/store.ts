import { now } from '../../core/timing.js';

interface Entry {
  readonly token: string;
  readonly expiresAt: number;
}

/** A blocked acquire's place in a key's line. */
export interface MemoryTicket {
  readonly wake: () => void;
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
    this.entries.set(key, { token, expiresAt: ttl === null ? Infinity : now() + ttl });
    this.fence += 1n;
    return this.fence.toString();
  }

  /** Sets the expiry of `key` to `ttl` ms from now if `token` holds it. */
  extendIfOwner(key: string, token: string, ttl: number): boolean {
    if (this.get(key) !== token) return false;
    this.entries.set(key, { token, expiresAt: now() + ttl });
    return true;
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

  /** Number of live entries. */
  get size(): number {
    for (const key of this.entries.keys()) this.get(key);
    return this.entries.size;
  }

  /** Forgets every entry. */
  clear(): void {
    this.entries.clear();
  }
}
