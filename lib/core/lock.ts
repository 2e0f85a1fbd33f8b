import type { AcquireOptions, BaseLock, DistributedLock } from './base-lock.js';
import { getConfiguration } from './configuration.js';
import { LockError } from './errors/lock.error.js';
import { messages } from './messages.js';
import type { LockOptions } from './options.js';

/**
 * The generic lock: uses the backend (and client) set with `configure()`. Like sherlock's `Lock`,
 * it is a proxy over the backend-specific lock class, so it behaves exactly like one.
 *
 * @example
 * import { configure, Lock } from 'nestjs-sherlock';
 * configure({ backend: 'memory' });
 * const lock = new Lock('my_lock', { expire: 5_000 });
 * await lock.acquire();
 * await lock.locked(); // true
 * await lock.release();
 */
export class Lock implements DistributedLock {
  /** The backend-specific lock doing the work. */
  readonly backendLock: BaseLock;

  constructor(name: string, options: LockOptions = {}) {
    const { backend } = getConfiguration();
    if (!backend) throw new LockError(messages.noBackend(String(name)), String(name));
    if (typeof options === 'object' && options !== null && 'client' in options) {
      throw new TypeError(messages.genericLockClient(backend.name, backend.lockClass.name));
    }
    this.backendLock = new backend.lockClass(name, options) as BaseLock;
  }

  get name(): string {
    return this.backendLock.name;
  }

  get key(): string {
    return this.backendLock.key;
  }

  get isAcquired(): boolean {
    return this.backendLock.isAcquired;
  }

  get fencingToken(): string | undefined {
    return this.backendLock.fencingToken;
  }

  get signal(): AbortSignal {
    return this.backendLock.signal;
  }

  extend(ms?: number): Promise<void> {
    return this.backendLock.extend(ms);
  }

  acquire(blocking?: boolean | AcquireOptions): Promise<boolean> {
    return this.backendLock.acquire(blocking);
  }

  release(): Promise<void> {
    return this.backendLock.release();
  }

  locked(): Promise<boolean> {
    return this.backendLock.locked();
  }

  using<T>(
    fn: (lock: this) => T | Promise<T>,
    options?: Omit<AcquireOptions, 'blocking'>,
  ): Promise<T> {
    return this.backendLock.using(() => fn(this), options);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.backendLock[Symbol.asyncDispose]();
  }
}
