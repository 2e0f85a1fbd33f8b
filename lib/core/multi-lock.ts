import { runSection, type TracedLock } from './instrumentation.js';
import { acquireRequest, type AcquireOptions, type BaseLock } from './base-lock.js';
import { LockAbortedError } from './errors/lock-aborted.error.js';
import { LockBusyError } from './errors/lock-busy.error.js';
import { LockNotHeldError } from './errors/lock-release.error.js';
import { LockTimeoutError } from './errors/lock-timeout.error.js';
import { LockError } from './errors/lock.error.js';
import { MultiLockError, type MultiLockFailure } from './errors/multi-lock.error.js';
import { BOUND_MANAGER, type BoundOptions, defaultManager, type LockManager } from './manager.js';
import { describeValue, messages } from './messages.js';
import {
  checkDuration,
  checkExpiry,
  checkKeys,
  LOCK_OPTION_KEYS,
  type LockOptions,
} from './options.js';
import { DeadlineExceededError, now, startTimer } from './timing.js';

/** The most locks one `MultiLock` takes (a longer list is refused with a RangeError). */
export const MAX_MULTI_LOCK_MEMBERS = 100;

/** Orders keys by UTF-16 code units: the same order in every process, whatever its locale. */
const byKey = (a: BaseLock, b: BaseLock): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** Checks the list of names (the `names` argument): a non-empty array of strings, not too long. */
function checkNames(names: unknown, option: string): readonly string[] {
  const max = MAX_MULTI_LOCK_MEMBERS;
  if (!Array.isArray(names)) {
    throw new TypeError(messages.invalidNames(option, describeValue(names), max));
  }
  if (names.length === 0 || names.length > max) {
    throw new RangeError(messages.invalidNames(option, `an array of ${names.length}`, max));
  }
  names.forEach((name: unknown, i) => {
    if (typeof name !== 'string') {
      throw new TypeError(
        messages.invalidOption(`${option}[${i}]`, name, 'a lock name (a non-empty string)'),
      );
    }
  });
  return names as readonly string[];
}

/** What `acquire()` was asked, checked. */
interface Request {
  readonly blocking: boolean;
  readonly timeout: number;
  readonly signal?: AbortSignal | undefined;
}

/** A holding of every member: the composed loss signal and how to stop listening. */
interface Holding {
  readonly controller: AbortController;
  readonly detach: () => void;
}

/**
 * Several locks taken as one: every one of them or none. The members are taken one after the
 * other in one canonical order (sorted by key, the same in every process), so two callers whose
 * sets overlap never wait for each other in a circle: no deadlock, whatever order the names were
 * given in. Duplicate names (the same key) are taken once. A blocking `acquire()` has one
 * `timeout` for the whole set (each member waits for what is left of it); when a member cannot be
 * had in time (or the `signal` aborts, or a non-blocking attempt finds a member taken) the
 * members already taken are released before `acquire()` rejects (or resolves `false`).
 *
 * Every member is a lock of the same manager, with the same options (namespace, expire,
 * autoExtend, ...). `signal` aborts when any member is known lost; `fencingTokens` has each
 * member's token; `extend()` and `release()` work on all of them.
 *
 * Take every lock of a unit of work in one `MultiLock`: a caller that already holds a lock and
 * then takes others steps outside the canonical order, and may wait for its timeout.
 *
 * @example
 * import { configure, MultiLock } from 'nestjs-sherlock';
 * configure({ backend: 'memory' });
 * const both = new MultiLock(['account:bob', 'account:alice'], { expire: 10_000 });
 * await both.using(async ({ signal, fencingTokens }) => transfer({ signal, fencingTokens }));
 */
export class MultiLock implements AsyncDisposable {
  /** The member names, in the order they are taken (sorted by key, without duplicates). */
  readonly names: readonly string[];
  /** The member names joined by `', '`: the `lockName` of this multi-lock's errors. */
  readonly name: string;
  /** The manager whose locks the members are. */
  readonly manager: LockManager;
  /** How long a blocking `acquire()` waits for the whole set, in ms. */
  readonly timeout: number;
  /** The members' `expire` in ms (`null`: never). */
  readonly expire: number | null;
  private members: readonly BaseLock[];
  /** Members held by an enclosing caller (Nest re-entrancy): neither taken nor released here. */
  private readonly adopted = new Set<BaseLock>();
  private holding: Holding | null = null;
  private acquiring = false;

  /**
   * @param names the lock names (at most 100; duplicates are taken once).
   * @param options the options of every member, over the manager's defaults (`configure()`'s
   *   for a `MultiLock` made with `new`; `manager.lockAll()` binds it to that manager).
   */
  constructor(names: readonly string[], options: LockOptions = {}) {
    checkKeys(options, 'MultiLock options', LOCK_OPTION_KEYS);
    const list = checkNames(names, 'names');
    const manager = (options as BoundOptions)[BOUND_MANAGER] ?? defaultManager();
    if (!manager.configuration.backend) {
      throw new LockError(messages.noBackend(list.join(', ')), list.join(', '));
    }
    const byKeyOnce = new Map<string, BaseLock>();
    for (const name of list) {
      const lock = manager.lock(name, options);
      if (!byKeyOnce.has(lock.key)) byKeyOnce.set(lock.key, lock);
    }
    this.members = [...byKeyOnce.values()].sort(byKey);
    this.names = this.members.map((lock) => lock.name);
    this.name = this.names.join(', ');
    this.manager = manager;
    const first = this.members[0] as BaseLock;
    this.timeout = first.timeout;
    this.expire = first.expire;
  }

  /** The member locks, in the order they are taken. */
  get locks(): readonly BaseLock[] {
    return this.members;
  }

  /** The members this object takes and releases (all of them, unless some were adopted). */
  private get own(): BaseLock[] {
    return this.members.filter((lock) => !this.adopted.has(lock));
  }

  /** Whether this object holds every member (as far as it knows). */
  get isAcquired(): boolean {
    return this.holding !== null && this.own.every((lock) => lock.isAcquired);
  }

  /**
   * The fencing token of each member's current holding, by member name (`undefined` for a
   * backend that issues none); empty when not held. Compare each with `BigInt`.
   */
  get fencingTokens(): ReadonlyMap<string, string | undefined> {
    if (this.holding === null) return new Map();
    return new Map(this.members.map((lock) => [lock.name, lock.fencingToken]));
  }

  /**
   * Aborts when any member's holding is known lost (its reason: that member's `LockLostError`).
   * A `release()` is no loss: a signal taken while held stays un-aborted. When not held, an
   * already-aborted signal.
   */
  get signal(): AbortSignal {
    return (
      this.holding?.controller.signal ??
      AbortSignal.abort(new LockError(messages.notHeldSignal(this.name), this.name))
    );
  }

  /**
   * Takes every member, in the canonical order. Blocking (the default) waits up to `timeout` ms
   * for the whole set and rejects with `LockTimeoutError` (`member`: the lock still busy);
   * non-blocking makes one attempt per member and resolves `false` if one is taken. Either way,
   * on failure, timeout or abort, nothing is held afterwards.
   */
  async acquire(blocking: boolean | AcquireOptions = true): Promise<boolean> {
    return (await this.acquireOrBusy(blocking)) === true;
  }

  /** @internal acquire(), resolving a `LockBusyError` (not thrown) instead of `false`. */
  async acquireOrBusy(blocking: boolean | AcquireOptions = true): Promise<true | LockBusyError> {
    const request = acquireRequest(blocking, this.timeout);
    if (this.acquiring) throw new LockError(messages.acquireInProgress(this.name), this.name);
    const stillHeld = this.own.find((lock) => lock.isAcquired);
    if (this.holding !== null || stillHeld) {
      const member = stillHeld?.name ?? this.names[0] ?? '';
      throw new LockError(messages.multiAlreadyHeld(this.name, member), this.name);
    }
    this.acquiring = true;
    try {
      return await this.takeAll(request);
    } finally {
      this.acquiring = false;
    }
  }

  /**
   * Takes the members in order, each with what is left of the one deadline; a member lost while
   * the later ones were taken (its expiry ran out) means starting over, within the same deadline.
   */
  private async takeAll(request: Request): Promise<true | LockBusyError> {
    const start = now();
    // The hard end of a blocking acquire, as for one lock: `timeout`, plus one operationTimeout
    // for the attempt in flight when it runs out. Without it, each member still to take could
    // add an operationTimeout of its own on a slow server.
    // The members wait with one signal: the caller's, or that hard end.
    const stop = new AbortController();
    const operationTimeout = this.members[0]?.operationTimeout ?? 0;
    const timer = request.blocking
      ? startTimer(
          () => stop.abort(new DeadlineExceededError('acquire', request.timeout)),
          request.timeout + operationTimeout,
          true,
        )
      : undefined;
    const caller = request.signal;
    const onAbort = () => stop.abort(caller?.reason);
    if (caller?.aborted) onAbort();
    else caller?.addEventListener('abort', onAbort, { once: true });
    const signal = stop.signal;
    try {
      for (;;) {
        const remaining = () => Math.max(0, request.timeout - (now() - start));
        const outcome = await this.takeRound(request, signal, remaining);
        if (outcome !== true) return outcome;
        const lost = this.own.find((lock) => lock.signal.aborted);
        if (!lost) {
          this.startHolding();
          return true;
        }
        await rollback(this.own);
        if (!request.blocking) return new LockBusyError(this.name, { member: lost.name });
        if (remaining() <= 0) {
          throw new LockTimeoutError(this.name, request.timeout, {
            cause: lost.signal.reason,
            member: lost.name,
            retryAfter: undefined,
          });
        }
      }
    } finally {
      timer?.clear();
      caller?.removeEventListener('abort', onAbort);
    }
  }

  /** One pass over the members: all taken (`true`), or none held on return. */
  private async takeRound(
    request: Request,
    signal: AbortSignal,
    remaining: () => number,
  ): Promise<true | LockBusyError> {
    const taken: BaseLock[] = [];
    for (const lock of this.own) {
      let outcome: true | LockBusyError;
      try {
        outcome = await lock.acquireOrBusy(
          request.blocking
            ? { blocking: true, timeout: remaining(), signal }
            : request.signal
              ? { blocking: false, signal: request.signal }
              : false,
        );
      } catch (err) {
        await rollback(taken);
        throw this.failure(err, lock, request);
      }
      if (outcome !== true) {
        await rollback(taken);
        return new LockBusyError(this.name, { retryAfter: outcome.retryAfter, member: lock.name });
      }
      taken.push(lock);
    }
    return true;
  }

  /** What `acquire()` rejects with when taking `member` failed with `err`. */
  private failure(err: unknown, member: BaseLock, request: Request): unknown {
    if (err instanceof LockTimeoutError) {
      return new LockTimeoutError(this.name, request.timeout, {
        cause: err,
        retryAfter: err.retryAfter,
        member: member.name,
      });
    }
    if (err instanceof LockAbortedError) {
      if (request.signal?.aborted) {
        return new LockAbortedError(this.name, { cause: request.signal.reason });
      }
      // Our own deadline cut the member's last attempt short.
      return new LockTimeoutError(this.name, request.timeout, {
        cause: err,
        retryAfter: undefined,
        member: member.name,
      });
    }
    return err; // LockBackendError of a non-blocking attempt, DriverMissingError, ...
  }

  /** Every member is held: compose their loss signals. */
  private startHolding(): void {
    const controller = new AbortController();
    const listeners: [AbortSignal, () => void][] = [];
    for (const lock of this.members) {
      const signal = lock.signal;
      const onAbort = () => controller.abort(signal.reason);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        listeners.push([signal, onAbort]);
      }
    }
    const detach = () => {
      for (const [signal, onAbort] of listeners) signal.removeEventListener('abort', onAbort);
    };
    this.holding = { controller, detach };
  }

  private endHolding(): void {
    this.holding?.detach();
    this.holding = null;
  }

  /**
   * Releases every member this object holds, all at once. Rejects with `LockNotHeldError`
   * ('not-acquired') when it holds none, and with `MultiLockError` naming the members that could
   * not be released (each with its error) after releasing all the others; a member whose release
   * failed on the server stays held, so calling `release()` again retries it.
   */
  async release(): Promise<void> {
    if (!this.holdsAny()) {
      this.endHolding();
      throw new LockNotHeldError(this.name, 'not-acquired', 'release');
    }
    const held = this.own.filter((lock) => lock.isAcquired);
    const results = await Promise.allSettled(held.map((lock) => lock.release()));
    if (!this.own.some((lock) => lock.isAcquired)) this.endHolding();
    this.report('release', held, results);
  }

  /**
   * Sets the expiry of every member to `ms` from now (default: `expire`). Rejects with
   * `LockNotHeldError` ('not-acquired') when this object does not hold the set, and with
   * `MultiLockError` naming the members that could not be extended (the others were; a member
   * found `'not-owned'` aborts `signal`).
   */
  async extend(ms: number | undefined = this.expire ?? undefined): Promise<void> {
    if (!this.isAcquired) throw new LockNotHeldError(this.name, 'not-acquired', 'extend');
    // What would fail every member the same way fails here, once.
    const { backend } = this.manager;
    if (!backend.capabilities.extend) {
      throw new LockError(messages.cannotExtend(backend.name), this.name);
    }
    if (ms === undefined) {
      throw new TypeError(
        messages.invalidOption(
          'ms',
          ms,
          'a number of milliseconds (this lock has no expire to default to)',
        ),
      );
    }
    const ttl = checkDuration('ms', ms, 1);
    checkExpiry(backend, ttl, 'ms');
    const own = this.own;
    const results = await Promise.allSettled(own.map((lock) => lock.extend(ttl)));
    this.report('extend', own, results);
  }

  /** Throws a `MultiLockError` if any of `results` (one per lock of `locks`) is a failure. */
  private report(
    operation: 'release' | 'extend',
    locks: readonly BaseLock[],
    results: readonly PromiseSettledResult<void>[],
  ): void {
    const failed: MultiLockFailure[] = [];
    const succeeded: string[] = [];
    results.forEach((result, i) => {
      const name = locks[i]?.name ?? '';
      if (result.status === 'fulfilled') succeeded.push(name);
      else failed.push({ name, error: asError(result.reason) });
    });
    if (failed.length > 0) throw new MultiLockError(this.name, operation, failed, succeeded);
  }

  /**
   * Acquires every member (blocking), runs `fn`, releases them all in `finally` and returns
   * `fn`'s result. If `fn` throws, its error wins over a failed release.
   *
   * @example
   * await locks.lockAll([`account:${from}`, `account:${to}`]).using(async () => move(from, to));
   */
  async using<T>(
    fn: (lock: this) => T | Promise<T>,
    options: Omit<AcquireOptions, 'blocking'> = {},
  ): Promise<T> {
    await this.acquire({ ...options, blocking: true });
    let result: T;
    try {
      result = await runSection(this.traced(), () => fn(this));
    } catch (err) {
      await this.release().catch(() => undefined);
      throw err;
    }
    await this.release();
    return result;
  }

  /** @internal what a tracer is told about this multi-lock. */
  traced(): TracedLock {
    return { name: this.name, names: this.names, backend: this.members[0]?.backend };
  }

  /** Releases the members this object holds, if any, so `await using` works. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.holdsAny()) await this.release();
    else this.endHolding();
  }

  /**
   * Whether this object holds something to release: a member it took (released or dropped ones,
   * e.g. by its manager's `close()`, do not count), or a set made only of re-entered members.
   */
  private holdsAny(): boolean {
    const own = this.own;
    return own.some((lock) => lock.isAcquired) || (own.length === 0 && this.holding !== null);
  }

  /**
   * @internal makes the members that `heldElsewhere` returns a lock for (by key) that lock,
   * held by an enclosing caller: this object neither takes nor releases them, but its `signal`
   * and `fencingTokens` include them. Before `acquire()` only.
   */
  adopt(heldElsewhere: (key: string) => BaseLock | undefined): void {
    if (this.holding !== null || this.acquiring) {
      throw new LockError(messages.multiAlreadyHeld(this.name, this.names[0] ?? ''), this.name);
    }
    this.members = this.members.map((lock) => {
      const held = heldElsewhere(lock.key);
      if (!held) return lock;
      this.adopted.add(held);
      return held;
    });
  }

  /**
   * @internal forgets the holding without releasing it (left to expire at shutdown): stops each
   * member's renewal and loss timers.
   */
  abandon(): void {
    for (const lock of this.own) lock.abandon();
    this.endHolding();
  }
}

/**
 * Releases `locks` (all at once); one whose release fails is abandoned (left to expire at the
 * server, its timers stopped), so that nothing stays marked as held here.
 */
async function rollback(locks: readonly BaseLock[]): Promise<void> {
  await Promise.all(
    locks
      .filter((lock) => lock.isAcquired)
      .map((lock) => lock.release().catch(() => lock.abandon())),
  );
}

const asError = (reason: unknown): Error =>
  reason instanceof Error ? reason : new Error(String(reason));
