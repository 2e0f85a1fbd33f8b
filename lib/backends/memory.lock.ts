import {
  type AcquireResult,
  BaseLock,
  type BaseLockOptions,
  type ReleaseWaiter,
} from '../core/base-lock.js';
import { messages } from '../core/messages.js';
import { backends, type BackendDefinition } from '../core/registry.js';
import { Alarm, now } from '../core/timing.js';

interface Entry {
  readonly token: string;
  readonly expiresAt: number;
}

/** A blocked acquire's place in a key's queue. */
export interface MemoryTicket {
  readonly wake: () => void;
}

/**
 * The store of the memory backend: a map of keys to owner tokens with expiry times, in this
 * process only. Every `MemoryLock` without a store of its own shares one default store.
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
   * Sets `key` to `token` unless it is held; `ttl` in ms, or null for no expiry. Resolves the
   * fencing token (from a counter of this store, so it increases for every key), or `false`.
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

  /** Deletes `key` if `token` holds it. */
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

/** Options of a MemoryLock: the lock options and an optional `MemoryStore`. */
export type MemoryLockOptions = BaseLockOptions;

/**
 * An in-process lock with the same API and semantics as the server-backed ones (expiry, owner
 * tokens, timeouts): for unit tests and single-process apps. It does not lock across processes.
 *
 * @example
 * const lock = new MemoryLock('cache-refresh', { expire: 5_000 });
 * if (await lock.acquire(false)) { try { await refresh(); } finally { await lock.release(); } }
 */
export class MemoryLock extends BaseLock<MemoryStore> {
  constructor(name: string, options?: MemoryLockOptions) {
    super(name, options);
  }

  private ticket: MemoryTicket | undefined;

  protected async _acquire(token: string): Promise<AcquireResult> {
    const fencingToken = this.client.setIfAbsent(this.key, token, this.expire, this.ticket);
    return fencingToken === false ? false : { fencingToken };
  }

  /** Waits in line: woken by the release before it (first come, first served) or its expiry. */
  protected override async openWaiter(): Promise<ReleaseWaiter> {
    const store = this.client;
    const alarm = new Alarm();
    const ticket: MemoryTicket = { wake: alarm.ring };
    this.ticket = ticket;
    store.enqueue(this.key, ticket);
    return {
      wait: (remaining, signal) => {
        const ttl = store.ttl(this.key);
        return alarm.sleep(Math.min(remaining, ttl >= 0 ? ttl + 1 : remaining), signal);
      },
      close: () => {
        store.dequeue(this.key, ticket);
        if (this.ticket === ticket) this.ticket = undefined;
      },
    };
  }

  protected override async _extend(token: string, ttl: number): Promise<boolean> {
    return this.client.extendIfOwner(this.key, token, ttl);
  }

  protected async _release(token: string): Promise<boolean> {
    return this.client.deleteIfOwner(this.key, token);
  }

  protected async _locked(): Promise<boolean> {
    return this.client.get(this.key) !== undefined;
  }
}

export const MEMORY: BackendDefinition = backends.register<MemoryStore>({
  name: 'memory',
  lockClass: MemoryLock,
  library: 'nestjs-sherlock',
  clientClass: MemoryStore,
  createClient: () => new MemoryStore(),
  // Every module or lock without a store of its own shares the process-wide store, so that two
  // Nest applications in one process see each other's locks, as they would on a server.
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
    return MEMORY.defaultClient() as MemoryStore;
  },
  // Nothing to close; the held entries expire or are released like on a server.
  closeClient: () => undefined,
});
