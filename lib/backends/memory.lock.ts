import { type AcquireResult, BaseLock, type BaseLockOptions } from '../core/base-lock.js';
import { messages } from '../core/messages.js';
import { backends, type BackendDefinition } from '../core/registry.js';
import { now } from '../core/timing.js';

interface Entry {
  readonly token: string;
  readonly expiresAt: number;
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
  setIfAbsent(key: string, token: string, ttl: number | null): string | false {
    if (this.get(key) !== undefined) return false;
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
    return this.entries.delete(key);
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

  protected async _acquire(token: string): Promise<AcquireResult> {
    const fencingToken = this.client.setIfAbsent(this.key, token, this.expire);
    return fencingToken === false ? false : { fencingToken };
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
