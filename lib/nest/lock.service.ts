import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import {
  type BackendName,
  type BaseLock,
  LockBusyError,
  type LockLostEvent,
  type LockManager,
  LockNotHeldError,
  type LockOptions,
  LockTimeoutError,
  type MultiLock,
  MultiLockError,
  LockError,
  type ReadWriteLock,
  type ReadWriteSide,
  type Semaphore,
  type ListOptions,
  type LockInfo,
} from '../sherlock.js';
import { runSection } from '../core/instrumentation.js';
import { startTimer, type Timer } from '../core/timing.js';
import { type LockContext, lockContext } from './lock-context.js';
import type { LockedOptions, LockedPrimitiveOptions } from './sherlock.interfaces.js';
import { nestMessages } from './sherlock.messages.js';
import {
  checkAtLeastFor,
  checkPrimitiveWithNames,
  PRIMITIVE_KEYS,
  type Registration,
  type ResolvedLockedOptions,
  validateLockedOptions,
  validatePrimitiveOptions,
} from './sherlock.options.js';

/** Options of `LockService.acquire()` / `tryAcquire()`: the lock options and a cancel signal. */
export interface LockServiceAcquireOptions extends LockOptions {
  signal?: AbortSignal;
}

/** The lock options of `@Locked` / `run()` settings (the rest is the service's business). */
function lockOptionsOf(settings: ResolvedLockedOptions): LockOptions {
  const { expire, timeout, retryInterval, autoExtend } = settings;
  return {
    ...(expire !== undefined ? { expire } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
    ...(retryInterval !== undefined ? { retryInterval } : {}),
    ...(autoExtend !== undefined ? { autoExtend } : {}),
  };
}

/** Errors that mean "someone else holds the lock" (they carry `retryAfter`). */
export const isBusyError = (err: unknown): err is LockTimeoutError | LockBusyError =>
  err instanceof LockTimeoutError || err instanceof LockBusyError;

let registrations = 0;

/**
 * Takes locks on the backend of one `SherlockModule` registration: a facade over the
 * registration's `LockManager`. Inject it where you need a lock in code; `@Locked()` uses it.
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
  /** Locks kept past their method for `atLeastFor`, with the timer that releases them. */
  private readonly lingering = new Map<BaseLock | MultiLock, Timer>();
  /** Tells this registration's held locks apart in the async context (two apps may share names). */
  private readonly contextId = `${++registrations}`;
  /** The manager of this registration: its defaults, client, held locks and events. */
  readonly manager: LockManager;
  private readonly locked: ResolvedLockedOptions;

  /** @internal built by SherlockModule from validated options. */
  constructor(
    /** The registration's name (`'default'` for the unnamed one). */
    readonly registration: string,
    { manager, locked }: Registration,
  ) {
    this.manager = manager;
    this.locked = locked;
    manager.on('lost', this.onLost);
  }

  /** Logs the loss of a lock of this registration. */
  private readonly onLost = ({ error }: LockLostEvent) => {
    this.logger.error(error.message);
  };

  /** The client this registration's locks use (created from `connection` at bootstrap). */
  get client(): object {
    if (this.manager.isClosed) throw new Error(nestMessages.closed(this.registration));
    return this.manager.client;
  }

  /**
   * The name of the backend, e.g. `'redis'`: one of the names `SherlockModule` accepted (a backend
   * of your own is in the union once declared in `SherlockBackends`, see docs/nest.md).
   */
  get backend(): BackendName {
    return this.manager.backend.name as BackendName;
  }

  /**
   * A lock object for `name` on this registration's backend, not yet acquired.
   *
   * @example
   * const lock = locks.create('report', { expire: 120_000 });
   * if (await lock.acquire(false)) { ... }
   */
  create(name: string, options: LockOptions = {}): BaseLock {
    if (this.manager.isClosed) throw new Error(nestMessages.closed(this.registration));
    return this.manager.lock(name, options);
  }

  /**
   * A multi-lock over `names` on this registration's backend, not yet acquired: every lock or
   * none, taken in one canonical order (sorted by key; duplicates once) so that two callers never
   * deadlock, within one `timeout` for the whole set. `options` apply to every member.
   *
   * @example
   * const both = locks.lockAll([`account:${from}`, `account:${to}`]);
   * await both.using(async () => this.move(from, to, amount));
   */
  lockAll(names: readonly string[], options: LockOptions = {}): MultiLock {
    if (this.manager.isClosed) throw new Error(nestMessages.closed(this.registration));
    return this.manager.lockAll(names, options);
  }

  /**
   * A semaphore object for `name` with `limit` permits on this registration's backend, not yet
   * acquired (one object per holder). Throws an `UnsupportedFeatureError` on a backend that
   * cannot hold one (Memcached, Redlock). See docs/semaphore.md.
   *
   * @example
   * await this.locks.semaphore('pdf-render', 4).using(async () => this.pdf.render(id));
   */
  semaphore(name: string, limit: number, options: LockOptions = {}): Semaphore {
    if (this.manager.isClosed) throw new Error(nestMessages.closed(this.registration));
    return this.manager.semaphore(name, limit, options);
  }

  /**
   * A read-write lock for `name` on this registration's backend, not yet acquired: `.read`
   * (shared) and `.write` (exclusive), each lock-like. Throws an `UnsupportedFeatureError` on a
   * backend that cannot hold one (Memcached, Redlock). See docs/read-write.md.
   *
   * @example
   * const catalog = this.locks.readWrite('catalog');
   * const items = await catalog.read.using(async () => this.catalog.list());
   */
  readWrite(name: string, options: LockOptions = {}): ReadWriteLock {
    if (this.manager.isClosed) throw new Error(nestMessages.closed(this.registration));
    return this.manager.readWrite(name, options);
  }

  /** The object `run()` / `@Locked` takes for one name: a lock, a permit or a read-write side. */
  private single(
    name: string,
    lockOptions: LockOptions,
    { limit, mode }: LockedPrimitiveOptions,
  ): BaseLock {
    if (limit !== undefined) return this.semaphore(name, limit, lockOptions);
    if (mode !== undefined) return this.readWrite(name, lockOptions)[mode];
    return this.create(name, lockOptions);
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
   * With an array of names, takes them all as one `MultiLock` (every lock or none, in one
   * canonical order, within one `timeout`) and gives it to `fn`; names this call chain already
   * holds are re-entered, not taken again.
   *
   * The result type says whether `fn` surely ran: with `onBusy: 'skip'` (or options whose
   * `onBusy` is not known to be `'throw'`) it is `Promise<T | undefined>`, as a busy lock
   * resolves `undefined` without calling `fn`; otherwise `Promise<T>`.
   *
   * @example
   * const balance = await locks.run(`account:${id}`, async () => this.accounts.withdraw(id, 10));
   * await locks.run([`account:${from}`, `account:${to}`], async () => this.move(from, to, 10));
   * const report = await locks.run('report', build, { wait: false, onBusy: 'skip' }); // Report | undefined
   */
  async run<T>(
    name: string,
    fn: (lock: BaseLock) => T | Promise<T>,
    options?: LockedOptions & LockedPrimitiveOptions & { onBusy?: 'throw' },
  ): Promise<T>;
  async run<T>(
    names: readonly string[],
    fn: (lock: MultiLock) => T | Promise<T>,
    options?: LockedOptions & { onBusy?: 'throw' },
  ): Promise<T>;
  async run<T>(
    name: string,
    fn: (lock: BaseLock) => T | Promise<T>,
    options: LockedOptions & LockedPrimitiveOptions,
  ): Promise<T | undefined>;
  async run<T>(
    names: readonly string[],
    fn: (lock: MultiLock) => T | Promise<T>,
    options: LockedOptions,
  ): Promise<T | undefined>;
  async run<T>(
    name: string | readonly string[],
    fn: ((lock: BaseLock) => T | Promise<T>) | ((lock: MultiLock) => T | Promise<T>),
    options: LockedOptions & LockedPrimitiveOptions = {},
  ): Promise<T | undefined> {
    const checked = {
      ...validateLockedOptions(options, 'LockService.run() options', PRIMITIVE_KEYS),
      ...validatePrimitiveOptions(options),
    };
    if (typeof name !== 'string') checkPrimitiveWithNames(checked, 'LockService.run()');
    return this.runLocked(name, fn as (lock: BaseLock | MultiLock) => T | Promise<T>, checked);
  }

  /**
   * Who holds `name` on this registration's backend: holder (host, pid, appName, acquired at),
   * time left, fencing token, waiters. See `LockManager.inspect` and docs/inspection.md.
   */
  async inspect(name: string): Promise<LockInfo> {
    if (this.manager.isClosed) throw new Error(nestMessages.closed(this.registration));
    return this.manager.inspect(name);
  }

  /** The held locks of this registration's namespace whose names start with `prefix`. */
  async list(prefix = '', options?: ListOptions): Promise<LockInfo[]> {
    if (this.manager.isClosed) throw new Error(nestMessages.closed(this.registration));
    return this.manager.list(prefix, options);
  }

  /**
   * Deletes the lock `name` whoever holds it and wakes the next waiter; logged as a warning.
   * The evicted holder's signal aborts at its next renewal. Resolves what it deleted, or `null`.
   */
  async forceRelease(name: string): Promise<LockInfo | null> {
    if (this.manager.isClosed) throw new Error(nestMessages.closed(this.registration));
    const removed = await this.manager.forceRelease(name);
    if (removed) {
      const h = removed.holder;
      this.logger.warn(
        `Force-released lock '${name}' (key ${JSON.stringify(removed.key)}), held by ${h?.host ?? '?'} pid ${h?.pid ?? '?'}${h?.app ? ` (${h.app})` : ''} since ${h?.acquiredAt?.toISOString() ?? '?'}`,
      );
    } else {
      this.logger.log(`Force-release of lock '${name}': nobody held it`);
    }
    return removed;
  }

  /** Whether anyone holds `name` on this registration's backend right now. */
  async isLocked(name: string, options: Pick<LockOptions, 'namespace'> = {}): Promise<boolean> {
    return this.create(name, options).locked();
  }

  /**
   * @internal the engine of `run()` and `@Locked()`: acquires per `options` (merged over the
   * module's `locked` defaults), runs `fn` in a context marking the lock(s) as held, releases (or
   * keeps them for `atLeastFor`). Resolves `undefined` without running `fn` when busy and
   * `onBusy` is 'skip'; otherwise a busy lock rejects with `LockBusyError` (did not wait) or
   * `LockTimeoutError` (waited), each carrying `retryAfter`. With an array of names, `fn` gets
   * the `MultiLock`.
   */
  async runLocked<T>(
    name: string | readonly string[],
    fn: (lock: BaseLock | MultiLock) => T | Promise<T>,
    options: LockedOptions & LockedPrimitiveOptions,
  ): Promise<T | undefined> {
    const settings: ResolvedLockedOptions = {
      ...this.locked,
      ...options,
    } as ResolvedLockedOptions;
    const { wait, onBusy, atLeastFor } = settings;
    const lockOptions = lockOptionsOf(settings);
    const context = lockContext.getStore();
    const heldKey = (key: string) => `${this.contextId}\0${key}`;
    let lock: BaseLock | MultiLock;
    let held: Map<string, BaseLock>;
    if (typeof name === 'string') {
      const single = this.single(name, lockOptions, options);
      checkAtLeastFor(atLeastFor, single.expire);
      // A lock, a semaphore and a read-write lock of one name are apart: so are their entries.
      const entry = heldKey(
        options.limit !== undefined
          ? `\0semaphore\0${single.key}`
          : options.mode !== undefined
            ? `\0readWrite\0${single.key}`
            : single.key,
      );
      const reentered = context?.held.get(entry);
      if (reentered) {
        // The write side held re-enters for a read too; the read side cannot become the write.
        if (options.mode === 'write' && (reentered as ReadWriteSide).mode === 'read') {
          throw new LockError(nestMessages.cannotUpgrade(single.name), single.name);
        }
        return fn(reentered);
      }
      lock = single;
      held = new Map(context?.held).set(entry, single);
    } else {
      const multi = this.lockAll(name, lockOptions);
      checkAtLeastFor(atLeastFor, multi.expire);
      // Names this call chain holds already are re-entered: part of the set, not taken again.
      multi.adopt((key) => context?.held.get(heldKey(key)));
      lock = multi;
      held = new Map(context?.held);
      for (const member of multi.locks) held.set(heldKey(member.key), member);
    }

    const signal = context?.signal;
    try {
      const outcome = await lock.acquireOrBusy(signal ? { blocking: wait, signal } : wait);
      if (outcome !== true) throw outcome;
    } catch (err) {
      if (isBusyError(err) && onBusy === 'skip') return undefined;
      throw err;
    }

    const acquiredAt = performance.now();
    const store: LockContext = {
      ...context,
      held,
      ...(typeof name === 'string' ? {} : { multiLock: lock as MultiLock }),
    };
    let result: T;
    try {
      result = await lockContext.run(store, () =>
        runSection(
          typeof name === 'string' ? (lock as BaseLock) : (lock as MultiLock).traced(),
          () => fn(lock),
        ),
      );
    } catch (err) {
      await this.finish(lock, acquiredAt, atLeastFor).catch(() => undefined);
      throw err;
    }
    await this.finish(lock, acquiredAt, atLeastFor);
    return result;
  }

  /**
   * @internal checks at bootstrap what a `@Locked` method will take: its options against this
   * registration's backend and, for a fixed name (or names), the name itself. Throws the
   * TypeError / RangeError the first call would.
   */
  checkLocked(name: unknown, options: LockedOptions & LockedPrimitiveOptions): void {
    const settings = { ...this.locked, ...options } as ResolvedLockedOptions;
    const lockOptions = lockOptionsOf(settings);
    // A semaphore or read-write lock on a backend without one fails the start (nothing is sent).
    if (options.limit !== undefined || options.mode !== undefined) {
      this.single(typeof name === 'string' ? name : 'locked-check', lockOptions, options);
    }
    const expire =
      typeof name === 'string'
        ? this.single(name, lockOptions, options).expire
        : Array.isArray(name)
          ? this.lockAll(name as string[], lockOptions).expire
          : this.manager.settle(lockOptions, this.manager.backend).expire;
    checkAtLeastFor(settings.atLeastFor, expire);
  }

  /** Releases now, or keeps the lock until `atLeastFor` ms after `acquiredAt`. */
  private async finish(
    lock: BaseLock | MultiLock,
    acquiredAt: number,
    atLeastFor: number,
  ): Promise<void> {
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

  private async release(lock: BaseLock | MultiLock): Promise<void> {
    try {
      await lock.release();
    } catch (err) {
      const notOwned = (error: unknown) =>
        error instanceof LockNotHeldError && error.reason === 'not-owned';
      if (notOwned(err)) this.logger.error(nestMessages.lostAtRelease(lock.name));
      if (err instanceof MultiLockError) {
        for (const { name, error } of err.failed) {
          if (notOwned(error)) this.logger.error(nestMessages.lostAtRelease(name));
        }
      }
      throw err;
    }
  }

  /**
   * Releases the locks this registration still holds (best effort, logged), stops the
   * `atLeastFor` timers (a kept lock with an expiry is left to expire, one without is released)
   * and closes the manager's client if the module created it.
   */
  async onApplicationShutdown(): Promise<void> {
    this.manager.off('lost', this.onLost);
    for (const [lock, timer] of this.lingering) {
      timer.clear();
      if (lock.expire !== null) {
        this.logger.log(nestMessages.leftToExpire(lock.name));
        lock.abandon();
      }
    }
    this.lingering.clear();
    if (this.manager.isClosed) return;
    const report = await this.manager.close();
    for (const name of report.released) this.logger.warn(nestMessages.released(name));
    for (const { name, error } of report.failed) {
      this.logger.error(nestMessages.releaseFailed(name, error));
    }
  }
}
