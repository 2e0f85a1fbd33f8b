import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import {
  type BaseLock,
  heldLocks,
  LockBusyError,
  lockEvents,
  type LockLostEvent,
  LockReleaseError,
  LockTimeoutError,
  type LockOptions,
} from '../sherlock.js';
import { startTimer, type Timer } from '../core/timing.js';
import { lockContext } from './lock-context.js';
import type { LockedOptions } from './sherlock.interfaces.js';
import { nestMessages } from './sherlock.messages.js';
import {
  checkAtLeastFor,
  type ResolvedLockedOptions,
  type ResolvedModuleOptions,
  validateLockedOptions,
} from './sherlock.options.js';

/** Options of `LockService.acquire()` / `tryAcquire()`: the lock options and a cancel signal. */
export interface LockServiceAcquireOptions extends LockOptions {
  signal?: AbortSignal;
}

/** Errors that mean "someone else holds the lock". */
export const isBusyError = (err: unknown): err is LockTimeoutError | LockBusyError =>
  err instanceof LockTimeoutError || err instanceof LockBusyError;

/** `expire` of the lock behind each busy error, so a 409 can say when to retry. */
export const busyLockExpire = new WeakMap<object, number | null>();

/**
 * Takes locks on the backend of one `SherlockModule` registration. Inject it where you need a
 * lock in code; `@Locked()` uses it for you.
 *
 * @example
 * constructor(private readonly locks: LockService) {}
 *
 * async settle(orderId: string) {
 *   return this.locks.run(`order:${orderId}`, async () => this.orders.settle(orderId));
 * }
 */
@Injectable()
export class LockService implements OnApplicationShutdown {
  private readonly logger = new Logger('SherlockModule');
  private readonly created = new WeakSet<BaseLock>();
  /** Locks kept past their method for `atLeastFor`, with the timer that releases them. */
  private readonly lingering = new Map<BaseLock, Timer>();
  private readonly clientValue: object;
  private closed = false;
  private readonly ownsClient: boolean;

  /** @internal built by SherlockModule from validated options. */
  constructor(
    /** The registration's name (`'default'` for the unnamed one). */
    readonly registration: string,
    private readonly options: ResolvedModuleOptions,
  ) {
    this.ownsClient = options.client === undefined;
    // Made at bootstrap (drivers connect lazily or in the background), so that connection
    // settings the backend cannot use fail the application's start, not its first lock.
    this.clientValue = options.client ?? options.backend.connect(options.connection);
    lockEvents.on('lost', this.onLost);
  }

  /** Logs the loss of a lock this registration created. */
  private readonly onLost = ({ lock, error }: LockLostEvent) => {
    if (this.created.has(lock as BaseLock)) this.logger.error(error.message);
  };

  /** The client this registration's locks use (created from `connection` at bootstrap). */
  get client(): object {
    if (this.closed) {
      throw new Error(
        `The SherlockModule registration '${this.registration}' was shut down: its client is closed`,
      );
    }
    return this.clientValue;
  }

  /** The name of the backend, e.g. `'redis'`. */
  get backend(): string {
    return this.options.backend.name;
  }

  /**
   * A lock object for `name` on this registration's backend, not yet acquired.
   *
   * @example
   * const lock = locks.create('report', { expire: 120_000 });
   * if (await lock.acquire(false)) { ... }
   */
  create(name: string, options: LockOptions = {}): BaseLock {
    const lock = new this.options.backend.lockClass(name, {
      ...this.options.lockOptions,
      ...options,
      client: this.client,
    }) as BaseLock;
    this.created.add(lock);
    return lock;
  }

  /**
   * Acquires `name` (waiting up to `timeout`) and returns the held lock; rejects with
   * `LockTimeoutError`. Release it with `lock.release()`.
   *
   * @example
   * const lock = await locks.acquire('migrations', { timeout: 30_000 });
   * try { await migrate(); } finally { await lock.release(); }
   */
  async acquire(name: string, options: LockServiceAcquireOptions = {}): Promise<BaseLock> {
    const { signal, ...lockOptions } = options;
    const lock = this.create(name, lockOptions);
    await lock.acquire(signal ? { signal } : true);
    return lock;
  }

  /** Tries once: the held lock, or `null` if someone else holds it. */
  async tryAcquire(name: string, options: LockOptions = {}): Promise<BaseLock | null> {
    const lock = this.create(name, options);
    return (await lock.acquire(false)) ? lock : null;
  }

  /**
   * Acquires `name`, runs `fn`, releases, and returns `fn`'s result. Re-entrant within one async
   * call chain: a nested `run` (or `@Locked`) on the same name runs without re-acquiring.
   *
   * @example
   * const balance = await locks.run(`account:${id}`, async () => this.accounts.withdraw(id, 10));
   */
  async run<T>(
    name: string,
    fn: (lock: BaseLock) => T | Promise<T>,
    options: LockedOptions = {},
  ): Promise<T> {
    const checked = validateLockedOptions(options, 'LockService.run() options');
    const result = await this.runLocked(name, fn, checked);
    return result as T;
  }

  /** Whether anyone holds `name` on this registration's backend right now. */
  async isLocked(name: string, options: Pick<LockOptions, 'namespace'> = {}): Promise<boolean> {
    return this.create(name, options).locked();
  }

  /**
   * @internal the engine of `run()` and `@Locked()`: acquires per `options` (merged over the
   * module's `locked` defaults), runs `fn` in a context marking the lock as held, releases (or
   * keeps it for `atLeastFor`). Resolves `undefined` without running `fn` when busy and
   * `onBusy` is 'skip'.
   */
  async runLocked<T>(
    name: string,
    fn: (lock: BaseLock) => T | Promise<T>,
    options: LockedOptions,
  ): Promise<T | undefined> {
    const settings: ResolvedLockedOptions = {
      ...this.options.locked,
      ...options,
    } as ResolvedLockedOptions;
    const { wait, onBusy, atLeastFor, expire, timeout, retryInterval, autoExtend } = settings;
    const lock = this.create(name, {
      ...(expire !== undefined ? { expire } : {}),
      ...(timeout !== undefined ? { timeout } : {}),
      ...(retryInterval !== undefined ? { retryInterval } : {}),
      ...(autoExtend !== undefined ? { autoExtend } : {}),
    });
    checkAtLeastFor(atLeastFor, lock.expire);
    const context = lockContext.getStore();
    const heldKey = `${this.registration}\0${lock.key}`;
    const reentered = context?.held.get(heldKey);
    if (reentered) return fn(reentered);

    const signal = context?.signal;
    try {
      const acquired = await lock.acquire(signal ? { blocking: wait, signal } : wait);
      if (!acquired) throw new LockBusyError(lock.name);
    } catch (err) {
      if (!isBusyError(err)) throw err;
      if (onBusy === 'skip') return undefined;
      busyLockExpire.set(err, lock.expire);
      throw err;
    }

    const acquiredAt = performance.now();
    const held = new Map(context?.held).set(heldKey, lock);
    let result: T;
    try {
      result = await lockContext.run({ ...context, held }, () => fn(lock));
    } catch (err) {
      await this.finish(lock, acquiredAt, atLeastFor).catch(() => undefined);
      throw err;
    }
    await this.finish(lock, acquiredAt, atLeastFor);
    return result;
  }

  /** Releases now, or keeps the lock until `atLeastFor` ms after `acquiredAt`. */
  private async finish(lock: BaseLock, acquiredAt: number, atLeastFor: number): Promise<void> {
    const keepFor = atLeastFor - (performance.now() - acquiredAt);
    if (keepFor <= 0) {
      await this.release(lock);
      return;
    }
    const timer = startTimer(
      () => {
        this.lingering.delete(lock);
        this.release(lock).catch((err: unknown) => this.logger.warn(String(err)));
      },
      keepFor,
      true,
    );
    this.lingering.set(lock, timer);
  }

  private async release(lock: BaseLock): Promise<void> {
    try {
      await lock.release();
    } catch (err) {
      if (err instanceof LockReleaseError && err.reason === 'not-owned') {
        this.logger.error(nestMessages.lostAtRelease(lock.name));
      }
      throw err;
    }
  }

  /**
   * Releases the locks this registration still holds (best effort, logged), stops the
   * `atLeastFor` timers (a kept lock with an expiry is left to expire, one without is released)
   * and closes the client if the module created it.
   */
  async onApplicationShutdown(): Promise<void> {
    lockEvents.off('lost', this.onLost);
    for (const [lock, timer] of this.lingering) {
      timer.clear();
      if (lock.expire !== null) this.logger.log(nestMessages.leftToExpire(lock.name));
    }
    const kept = new Set([...this.lingering.keys()].filter((lock) => lock.expire !== null));
    this.lingering.clear();
    const mine = heldLocks().filter(
      (lock): lock is BaseLock => this.created.has(lock as BaseLock) && !kept.has(lock as BaseLock),
    );
    await Promise.all(
      mine.map(async (lock) => {
        try {
          await lock.release();
          this.logger.warn(nestMessages.released(lock.name));
        } catch (err) {
          this.logger.error(nestMessages.releaseFailed(lock.name, err));
        }
      }),
    );
    if (this.ownsClient && !this.closed) {
      this.closed = true;
      await this.options.backend.closeClient(this.clientValue);
    }
  }
}
